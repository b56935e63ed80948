"""Peak memory of a run, measured and explained.

On CUDA the allocator's peak is exact. On CPU the process high-water mark (``ru_maxrss``)
never goes down, so the second run in a kernel would report the first run's peak; a
sampler thread therefore records resident memory above the level at the start of the run.
Beside the measurement, ``breakdown()`` gives the analytic split a learner can reason about.

Before a CUDA run starts, ``check_fits`` compares ``run_estimate`` (the same parts, from the
config and the model's shape, before any model is built) times ``SAFETY_FACTOR`` with the
memory the device has free, and refuses a run that will not fit with what to change.
"""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any

import psutil
import torch

from .config import REFERENCE_FREE
from .errors import DoesNotFitError
from .methods import logical_numel, method_config

GiB = 2**30
# Every peak measured on a GPU (docs/gpu.md, "Memory checked before a run") is at most
# 1.32 x ``run_estimate`` (QLoRA; full 1.02, LoRA 1.11, GRPO 0.96): the check budgets 1.35 x.
SAFETY_FACTOR = 1.35
# A GRPO prompt's tokens: ftlab.rlhf.make_prompts' longest is 39 in SmolLM2's chat template.
RL_PROMPT_TOKENS = 48
SKIP_CHECK_VARIABLE = "FTLAB_SKIP_MEMORY_CHECK"


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
    dtype_scale = _compute_elem_size(model, base_cfg) / 2
    per_layer = s * b * h * (34 + 5 * a * s / max(h, 1))
    activations = int(layers * per_layer * dtype_scale)
    return MemoryBreakdown(weights, grads, optimizer, activations)


def _compute_elem_size(model, config: Any = None) -> int:
    """Bytes of an activation element. A 4-bit base computes in its bitsandbytes compute
    dtype: its first floating-point weights (embeddings, norms) are fp32 only because
    ``prepare_model_for_kbit_training`` cast them up (the GPU record counted QLoRA's
    activations twice LoRA's because of that). Else the first floating-point weight's."""
    quant = getattr(config, "quantization_config", None)
    get = quant.get if isinstance(quant, dict) else lambda k, d=None: getattr(quant, k, d)
    if quant is not None and get("load_in_4bit", False):
        dtype = get("bnb_4bit_compute_dtype", None)
        dtype = getattr(torch, dtype.removeprefix("torch."), None) if isinstance(
            dtype, str) else dtype
        if isinstance(dtype, torch.dtype):
            return dtype.itemsize
    for p in model.parameters():
        if p.is_floating_point():
            return p.element_size()
    return 4


# -- the check before a run ------------------------------------------------------------------

def free_device_memory(device: str) -> int | None:
    """Bytes free on ``device`` now (``torch.cuda.mem_get_info``), or None where no check is
    done: the CPU and MPS share the machine's memory with everything else running. The one
    place the check reads the device: tests replace it."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = int(device[5:]) if device.startswith("cuda:") else torch.cuda.current_device()
    return int(torch.cuda.mem_get_info(index)[0])


def model_shape(spec: str):
    """The shape (``instruments.memory_scale.Shape``) of a model spec, read without building
    the model: its config.json only. None where it cannot be read (the loader then says why)."""
    from .instruments.memory_scale import SHAPES, Shape
    from .models import (
        EMBEDDED_ALIASES,
        TINY_MODEL,
        _local_files_only,
        resolve_source,
        tiny_config,
    )

    if spec in EMBEDDED_ALIASES:
        return SHAPES["135m"]
    if spec == TINY_MODEL:
        return Shape.from_config(tiny_config(SHAPES["135m"].vocab), TINY_MODEL)
    try:
        from transformers import AutoConfig

        source = resolve_source(spec)
        config = AutoConfig.from_pretrained(source,
                                            local_files_only=_local_files_only(spec, source))
        return Shape.from_config(config, spec)
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def run_estimate(cfg, placement, shape) -> MemoryBreakdown:
    """Peak training memory of a run, from its config and the model's shape (no model).

    ``breakdown``'s four parts in the dtypes the run will use (bf16: weights and AdamW state
    in bf16; fp16 mixed precision: fp32 weights plus autocast's fp16 copies; PEFT adapters
    fp32; a 4-bit base's other weights fp32), activations by Korthikanti et al. at the
    compute dtype with a fused attention kernel, and the two terms the GPU record showed
    ``breakdown`` lacks: the logits with their log-softmax and gradient in fp32
    (``3·4·b·s·V``), and the input of every adapted layer copied for its fp32 adapter (4
    bytes; 2 under autocast). Lengths are bounds: ``data.max_length``; a GRPO step,
    ``train.batch_size · rl.generations`` sequences of its prompt and
    ``rl.max_completion_length`` tokens, under bf16/fp16 autocast, with TRL's fused LM head
    (log-probs in tiles: no logits term). A GRPO run also holds the reward model (learned
    proxy) and, for ``full``, a reference copy; a preference step, both answers of
    ``train.batch_size`` pairs of ``pref.max_length`` tokens, and for ``full`` against a
    reference, its copy.
    """
    m = cfg.method
    w = placement.weight_dtype.itemsize
    half = placement.dtype in (torch.bfloat16, torch.float16)
    n = shape.n_params
    if cfg.pref is not None:  # both answers of every pair (a KTO row: one answer)
        b, s = 2 * cfg.train.batch_size, cfg.pref.max_length or cfg.data.max_length
    elif cfg.rl is None:
        b, s = cfg.train.batch_size, cfg.data.max_length
    else:
        b = cfg.train.batch_size * cfg.rl.generations
        s = RL_PROMPT_TOKENS + cfg.rl.max_completion_length
    s += m.virtual_inputs()
    trainable = m.trainable_params(shape)
    if m.quantized_base:
        bits = 4 + (8 / 64 + 32 / (64 * 256) if m.double_quant else 32 / 64)
        weights = shape.linear_params * bits / 8 + shape.other_params * 4
        dense = shape.other_params
    else:
        weights, dense = n * w, n
    if placement.dtype == torch.float16:
        weights += 2 * dense  # autocast's fp16 copy of each fp32 weight, held for backward
    if m.trains_base:
        grads, optimizer = trainable * w, 2 * trainable * w  # AdamW moments: weights' dtype
    else:
        weights += 4 * trainable
        grads, optimizer = 4 * trainable, 8 * trainable
    if cfg.rl is not None:
        weights += n * w * (int(m.trains_base) + int(cfg.rl.reward == "learned"))
    if cfg.pref is not None and cfg.pref.loss not in REFERENCE_FREE:
        weights += n * w * int(m.trains_base)  # full: the frozen reference copy
    tokens = b * s
    per_layer = tokens * shape.hidden * 34 * (2 if half else 4) / 2
    if half and hasattr(m, "adapted"):
        # the supervised Trainer runs bf16 weights without autocast: the copy is fp32
        autocast = cfg.rl is not None or placement.dtype == torch.float16
        per_layer += tokens * sum(i for i, _ in m.adapted(shape)) * (2 if autocast else 4)
    logits = 3 * 4 * b * s * shape.vocab if cfg.rl is None else 0
    return MemoryBreakdown(int(weights), int(grads), int(optimizer),
                           int(shape.layers * per_layer + logits))


def _needed(cfg, placement, shape) -> int:
    return int(run_estimate(cfg, placement, shape).total * SAFETY_FACTOR)


def _what(cfg) -> str:
    if cfg.rl is None:
        return (f"{cfg.method.name}, batch {cfg.train.batch_size} x {cfg.data.max_length} "
                "tokens")
    return (f"GRPO with {cfg.method.name}, {cfg.train.batch_size} prompts x "
            f"{cfg.rl.generations} completions of up to {cfg.rl.max_completion_length} tokens")


def _changes_that_fit(cfg, placement, shape, free: int) -> list[str]:
    """Each single change that would fit: the largest value of a size knob, or a method."""
    knobs = [("train.batch_size", 1)]
    knobs += ([("data.max_length", 16)] if cfg.rl is None else
              [("rl.generations", 2), ("rl.max_completion_length", 4)])
    out = []
    for dotted, low in knobs:
        section, name = dotted.split(".")
        now = getattr(getattr(cfg, section), name)
        trial = copy.deepcopy(cfg)

        def fits(v: int, trial=trial, section=section, name=name) -> bool:
            setattr(getattr(trial, section), name, v)
            return _needed(trial, placement, shape) <= free

        if now <= low or not fits(low):
            continue
        lo, hi = low, now - 1  # lo fits; find the largest value that does
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        out.append(f"{dotted} {lo} or less (now {now})")
    lighter = {"full": ("lora", "qlora"), "lora": ("qlora",)}.get(cfg.method.name, ())
    for name in lighter:
        trial = copy.deepcopy(cfg)
        trial.method = method_config(name)
        if _needed(trial, placement, shape) <= free:
            out.append(f"method '{name}' instead of '{cfg.method.name}'")
            break
    return out


def check_fits(cfg, placement) -> MemoryBreakdown | None:
    """Refuse a run that will not fit before any model is built: ``DoesNotFitError`` when
    ``run_estimate`` x ``SAFETY_FACTOR`` exceeds the device's free memory, naming both and
    each single change that would fit. Returns the estimate; None where nothing is checked
    (CPU and MPS, a model whose shape cannot be read, ``FTLAB_SKIP_MEMORY_CHECK=1``)."""
    if os.environ.get(SKIP_CHECK_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on"):
        return None
    free = free_device_memory(placement.device)
    if free is None:
        return None
    shape = model_shape(cfg.model)
    if shape is None:
        return None
    estimate = run_estimate(cfg, placement, shape)
    needed = int(estimate.total * SAFETY_FACTOR)
    if needed > free:
        detail = (f"ftlab's estimate {estimate.total / GiB:.1f} GiB x {SAFETY_FACTOR} "
                  f"safety factor, for {_what(cfg)} in {placement.dtype_name}")
        raise DoesNotFitError(placement.device, needed, free, detail,
                              _changes_that_fit(cfg, placement, shape, free))
    return estimate
