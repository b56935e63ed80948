"""The five fine-tuning methods on one task and one budget: the course's comparison table.

Arms are the methods by name (``full``, ``lora``, ``qlora``, ``prefix``, ``prompt``), each
with its own default learning rate (``ftlab.methods``), on the same task, data, steps and
batch. Every method notebook calls ``MethodsLab().run(method, seed=0)``, so the compare
notebook loads their runs from the run cache instead of training them again.

The claim is what holds at 135M parameters on a CPU budget (measured): the share of
trained parameters orders full > LoRA ≈ QLoRA > prefix > prompt; each method lowers the
validation loss on its task; and QLoRA stores its frozen base in well under half of LoRA's
weight memory. Quality and forgetting differences are reported, not asserted: at this
scale they are small and seed-dependent (see the compare notebook).
"""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..evaluate.suite import evaluator
from ..runs import Run
from .base import Lab

METHOD_NAMES = ("full", "lora", "qlora", "prefix", "prompt")

# Sizes by preset (the CPU ones measured to keep one run near 30-40 s on 2 cores).
BASES: dict[str, dict[str, Any]] = {
    "cpu": {"size": 96, "steps": 24, "batch_size": 4, "eval_every": 8, "data.val_size": 16,
            "data.max_length": 96, "eval.samples": 0},
    "gpu": {"size": 1200, "steps": 300, "batch_size": 16, "eval_every": 25,
            "data.val_size": 200, "data.max_length": 256, "eval.samples": 0},
}
TASK_ROWS = {"cpu": 16, "gpu": 200}  # held-out test rows the task score is measured on

# The check's margins.
LOWERS = 0.05  # each method ends at least this much (relative) below the base's val loss
NEAR = 0.25  # LoRA and QLoRA train shares within this (relative) of each other
WEIGHT_RATIO = 0.5  # QLoRA's weight memory at most this share of LoRA's


class MethodsLab(Lab):
    """All five methods, same task and budget; the lesson is what holds at this scale."""

    title = "The five methods, one task, one budget"
    claim = ("On the same task and budget: the share of trained parameters orders "
             "full > LoRA ≈ QLoRA > prefix > prompt; every method lowers the validation loss "
             f"by at least {LOWERS:.0%}; QLoRA's weights take at most {WEIGHT_RATIO:.0%} of "
             "LoRA's memory.")
    base = RunConfig(preset="auto").replace(task="arithmetic")
    arms = {name: {"method": name} for name in METHOD_NAMES}
    watch = {"task": evaluator("task", when="ends", rows=TASK_ROWS["cpu"])}
    knobs = ("lr", "steps", "batch_size", "size")
    metrics = {"task score (held-out rows)": ["task.score"]}
    seeds = (0,)

    def __init__(self, runs_dir=None, **changes: Any) -> None:
        super().__init__(runs_dir, **changes)
        self.preset = self.config_base.resolved().preset
        self.config_base = self.config_base.replace(
            **{k: v for k, v in BASES[self.preset].items() if k not in changes})
        if self.preset != "cpu":
            self.watch = {"task": evaluator("task", preset=self.preset, when="ends",
                                            rows=TASK_ROWS[self.preset])}

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs: dict[str, Run]) -> dict[str, float]:
        m: dict[str, float] = {}
        for arm, r in runs.items():
            f = r.final
            m[f"{arm}.share_%"] = f["params"]["percent"]
            m[f"{arm}.val_drop"] = 1 - f["final_val_loss"] / f["first_val_loss"]
            m[f"{arm}.weights_MB"] = f["memory_breakdown"]["weights"] / 2**20
            m[f"{arm}.task"] = r.metric("task.score")
        return m

    def conditions(self, m: dict[str, float]) -> dict[str, bool]:
        s = {a: m[f"{a}.share_%"] for a in METHOD_NAMES}
        return {
            "full > LoRA ≈ QLoRA > prefix > prompt": (
                s["full"] > max(s["lora"], s["qlora"])
                and abs(s["lora"] - s["qlora"]) <= NEAR * s["lora"]
                and min(s["lora"], s["qlora"]) > s["prefix"] > s["prompt"]),
            "each lowers val loss": all(m[f"{a}.val_drop"] >= LOWERS for a in METHOD_NAMES),
            "QLoRA weights well below LoRA's": (
                m["qlora.weights_MB"] <= WEIGHT_RATIO * m["lora.weights_MB"]),
        }


# -- the compare notebook's measurements ------------------------------------------------
# Peak memory on a CPU is the process's resident memory, which never goes back down for
# the allocator's purposes: a second run in the same kernel would report the first one's
# peak. Each method is therefore measured in a fresh Python process that trains a few
# steps of the same config and saves what the method produces (adapter or whole model).


def measure_fresh(lab: MethodsLab, arm: str, seed: int = 0, *, steps: int = 2,
                  refresh: bool = False, timeout_s: int = 600) -> dict:
    """Peak memory of training ``arm`` for ``steps`` steps in a fresh process, and the size
    on disk of what it saves. Stored beside the runs (``<runs>/_memory/``) and reused
    unless ``refresh``; the key is the resolved config and ftlab's code version."""
    import hashlib
    import json
    import subprocess
    import sys

    from ..runs import code_version, runs_root, write_json

    cfg = _probe_config(lab.config(arm, seed), steps).resolved()
    key = hashlib.sha256(json.dumps({"config": cfg.to_dict(), "ftlab": code_version()},
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = runs_root(lab.runs_dir) / "_memory" / f"{arm}-{key}.json"
    if path.is_file() and not refresh:
        out = json.loads(path.read_text(encoding="utf-8"))
        out["from_cache"] = True
        return out
    proc = subprocess.run([sys.executable, "-m", "ftlab.labs.methods", "--measure",
                           json.dumps(cfg.to_dict(), default=str)],
                          capture_output=True, text=True, timeout=timeout_s)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe of {arm!r} failed (exit {proc.returncode}):\n"
                           + proc.stderr[-3000:])
    out = json.loads(lines[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, out)
    out["from_cache"] = False
    return out


def _probe_config(cfg: RunConfig, steps: int) -> RunConfig:
    # same method, data, batch and sequence length; a few steps, one small validation batch
    return cfg.replace(steps=steps, eval_every=steps, **{"eval.samples": 0,
                                                         "data.val_size": 4})


def _probe_main(config_json: str) -> None:
    """Run in a fresh process: sample resident memory from the start, train, save."""
    import json
    import shutil
    import tempfile
    import threading
    import time
    from pathlib import Path

    import psutil

    proc = psutil.Process()
    peak = {"rss": 0, "anon": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            mi = proc.memory_info()
            peak["rss"] = max(peak["rss"], mi.rss)
            peak["anon"] = max(peak["anon"], mi.rss - mi.shared)

    threading.Thread(target=sample, daemon=True).start()
    import torch  # noqa: F401  (the runtime is part of the baseline)
    import transformers  # noqa: F401

    from ..train import train

    mi = proc.memory_info()
    baseline = {"rss": mi.rss, "anon": mi.rss - mi.shared}
    cfg = RunConfig.from_dict(json.loads(config_json))
    tmp = Path(tempfile.mkdtemp(prefix="ftlab-probe-"))
    try:
        t0 = time.perf_counter()
        run = train(cfg, runs_dir=tmp / "runs", progress=False)
        wall = time.perf_counter() - t0
        stop.set()
        run.model.save_pretrained(tmp / "saved")
        saved = sum(f.stat().st_size for f in (tmp / "saved").rglob("*") if f.is_file()
                    and f.suffix in (".safetensors", ".bin"))
    finally:
        stop.set()
        shutil.rmtree(tmp, ignore_errors=True)
    f = run.final
    print(json.dumps({
        "method": cfg.method.name, "steps": cfg.train.max_steps, "wall_s": wall,
        "peak_rss_bytes": peak["rss"], "peak_anon_bytes": peak["anon"],
        "runtime_rss_bytes": baseline["rss"], "runtime_anon_bytes": baseline["anon"],
        "training_bytes": peak["anon"] - baseline["anon"],
        "breakdown": f["memory_breakdown"], "params": f["params"],
        "saved_bytes": saved, "torch_threads": torch.get_num_threads(),
    }))


def change_interval(before: float, after: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of ``after - before`` for two accuracies on ``n`` items each (Newcombe's
    hybrid score interval from two Wilson intervals). It treats the two as independent,
    which is conservative here: both are measured on the same items."""
    from ..evaluate.result import wilson_interval

    l1, u1 = wilson_interval(before * n, n, z)
    l2, u2 = wilson_interval(after * n, n, z)
    d = after - before
    return (d - ((after - l2) ** 2 + (u1 - before) ** 2) ** 0.5,
            d + ((u2 - after) ** 2 + (before - l1) ** 2) ** 0.5)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        _probe_main(sys.argv[2])
    else:
        raise SystemExit("usage: python -m ftlab.labs.methods --measure CONFIG_JSON")
