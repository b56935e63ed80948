"""Peak memory of a run, measured and explained.

On CUDA the allocator's peak is exact. On CPU the process high-water mark (``ru_maxrss``)
never goes down, so the second run in a kernel would report the first run's peak; a
sampler thread therefore records resident memory above the level at the start of the run.
Beside the measurement, ``breakdown()`` gives the analytic split a learner can reason about.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import psutil
import torch

from .methods import logical_numel


class PeakMemory:
    """Context manager: peak bytes used by the work inside it (CUDA allocator or CPU RSS)."""

    def __init__(self, device: str, interval_s: float = 0.05) -> None:
        self.device, self.interval_s = device, interval_s
        self.peak_bytes = 0
        self.baseline_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline_bytes = torch.cuda.memory_allocated()
        else:
            proc = psutil.Process()
            self.baseline_bytes = proc.memory_info().rss
            self.peak_bytes = self.baseline_bytes
            self._thread = threading.Thread(target=self._sample, args=(proc,), daemon=True)
            self._thread.start()
        return self

    def _sample(self, proc: psutil.Process) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            if self._thread:
                self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)

    @property
    def kind(self) -> str:
        return "cuda_allocator_peak" if self.device.startswith("cuda") else "cpu_rss_peak"

    @property
    def above_baseline_bytes(self) -> int:
        return max(0, self.peak_bytes - self.baseline_bytes)


@dataclass
class MemoryBreakdown:
    """Where training memory goes, estimated from shapes (bytes)."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def breakdown(model, batch_size: int, seq_len: int) -> MemoryBreakdown:
    """Weights as stored (4-bit counted at half a byte), gradients and two AdamW moments (in
    the parameter's dtype) for trainable parameters, and activations by the per-layer
    estimate of Korthikanti et al. (2022), sbh·(34 + 5·a·s/h) bytes at 16 bits, scaled to
    the compute dtype."""
    weights = grads = 0
    for p in model.parameters():
        weights += p.numel() * p.element_size()  # packed 4-bit: numel() already halved
        if p.requires_grad:
            grads += logical_numel(p) * p.element_size()
    optimizer = 2 * grads
    cfg = getattr(model, "config", None)
    base_cfg = getattr(getattr(model, "get_base_model", lambda: model)(), "config", cfg)
    h = getattr(base_cfg, "hidden_size", 0)
    a = getattr(base_cfg, "num_attention_heads", 1)
    layers = getattr(base_cfg, "num_hidden_layers", 0)
    s, b = seq_len, batch_size
    dtype_scale = _compute_elem_size(model) / 2
    per_layer = s * b * h * (34 + 5 * a * s / max(h, 1))
    activations = int(layers * per_layer * dtype_scale)
    return MemoryBreakdown(weights, grads, optimizer, activations)


def _compute_elem_size(model) -> int:
    for p in model.parameters():
        if p.is_floating_point():
            return p.element_size()
    return 4
