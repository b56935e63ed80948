"""The five fine-tuning methods on one task and one budget: the course's comparison table.

Arms are the methods by name (``full``, ``lora``, ``qlora``, ``prefix``, ``prompt``), each
with its own default learning rate (``ftlab.methods``), on the same task, data, steps and
batch. Every method notebook calls ``MethodsLab().run(method, seed=0)``, so the compare
notebook loads their runs from the run cache instead of training them again.

The claim is what holds at 135M parameters on a CPU budget (measured): the share of
trained parameters orders full > LoRA ≈ QLoRA > prefix > prompt; each method lowers the
validation loss on its task; and QLoRA stores its frozen base in well under half of LoRA's
weight memory. Quality and forgetting differences are reported, not asserted: at this
scale they are small and seed-dependent (see the compare notebook). The compare figure:
``show_methods``.
"""

from __future__ import annotations

from datetime import date

from ..config import RunConfig
from ..evaluate.suite import evaluator
from ..methods import METHODS, label_of
from ..runs import Run
from .base import Lab, Preset
from .calibration import CPU_2_CORES, Calibration

METHOD_NAMES = tuple(METHODS)  # the registry's order: full, lora, qlora, prefix, prompt

# The check's margins.
LOWERS = 0.05  # each method ends at least this much (relative) below the base's val loss
NEAR = 0.25  # LoRA and QLoRA train shares within this (relative) of each other
WEIGHT_RATIO = 0.5  # QLoRA's weight memory at most this share of LoRA's

# Measured on the CPU preset, seed 0 (the lab's one seed; the method notebooks and
# 15_compare show these): the share of parameters trained, in %.
MEASURED: dict[int, dict[str, float]] = {
    0: {"full.share_%": 100.0, "lora.share_%": 1.78, "qlora.share_%": 1.78,
        "prefix.share_%": 0.17, "prompt.share_%": 0.0086},
}
CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 11, 26), per_seed=MEASURED,
    wall="one run near 30-40 s", source="ftlab.labs.methods.MEASURED",
    note="the falls in validation loss and QLoRA's weight memory against LoRA's were not "
         "recorded per method")


class MethodsLab(Lab):
    """All five methods, same task and budget; the lesson is what holds at this scale."""

    title = "The five methods, one task, one budget"
    claim = ("On the same task and budget: the share of trained parameters orders "
             "full > LoRA ≈ QLoRA > prefix > prompt; every method lowers the validation loss "
             f"by at least {LOWERS:.0%}; QLoRA's weights take at most {WEIGHT_RATIO:.0%} of "
             "LoRA's memory.")
    base = RunConfig(preset="auto").replace(task="arithmetic")
    # Sizes by preset (the CPU ones measured to keep one run near 30-40 s on 2 cores); the
    # task score on 16 (cpu) or 200 (gpu) held-out test rows.
    presets = {
        "cpu": Preset(
            base={"size": 96, "steps": 24, "batch_size": 4, "eval_every": 8,
                  "data.val_size": 16, "data.max_length": 96, "eval.samples": 0},
            arms={name: {"method": name} for name in METHOD_NAMES},
            watch={"task": evaluator("task", preset="cpu", when="ends", rows=16),
                   "bench": evaluator("benchmark", preset="cpu", when="ends")},
            calibration=CALIBRATION),
        "gpu": Preset(
            base={"size": 1200, "steps": 300, "batch_size": 16, "eval_every": 25,
                  "data.val_size": 200, "data.max_length": 256, "eval.samples": 0},
            arms={name: {"method": name} for name in METHOD_NAMES},
            watch={"task": evaluator("task", preset="gpu", when="ends", rows=200),
                   "bench": evaluator("benchmark", preset="gpu", when="ends")}),
    }
    knobs = ("lr", "steps", "batch_size", "size")
    metrics = {"task score (held-out rows)": ["task.score"],
               "broad benchmark (forgetting)": ["bench.score"]}
    number_names = {
        "share_%": "parameters trained (% of the model)",
        "val_drop": "fall in validation loss (relative)",
        "qlora/lora weights": "QLoRA's weight memory / LoRA's",
    }
    seeds = (0,)

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs: dict[str, Run]) -> dict[str, float]:
        m: dict[str, float] = {}
        for arm, r in runs.items():
            m[f"{arm}.share_%"] = r.final["params"]["percent"]
        for arm, r in runs.items():
            m[f"{arm}.val_drop"] = 1 - r.final["final_val_loss"] / r.final["first_val_loss"]
        if "qlora" in runs and "lora" in runs:
            m["qlora/lora weights"] = (runs["qlora"].final["memory_breakdown"]["weights"]
                                       / runs["lora"].final["memory_breakdown"]["weights"])
        return m

    def conditions(self, m: dict[str, float]) -> dict[str, bool]:
        s = {a: m[f"{a}.share_%"] for a in METHOD_NAMES}
        return {
            "full > LoRA ≈ QLoRA > prefix > prompt": (
                s["full"] > max(s["lora"], s["qlora"])
                and abs(s["lora"] - s["qlora"]) <= NEAR * s["lora"]
                and min(s["lora"], s["qlora"]) > s["prefix"] > s["prompt"]),
            "each lowers val loss": all(m[f"{a}.val_drop"] >= LOWERS for a in METHOD_NAMES),
            "QLoRA weights well below LoRA's": m["qlora/lora weights"] <= WEIGHT_RATIO,
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
    import json
    import subprocess
    import sys

    from ..digest import digest
    from ..runs import code_version, runs_root, write_json

    cfg = _probe_config(lab.config(arm, seed), steps).resolved()
    key = digest({"config": cfg.to_dict(), "ftlab": code_version()})
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
    """Run in a fresh process: sample resident memory from the start, train, save.

    Two phases are kept apart: building the model (loading, quantizing, wrapping) and
    training (from the trainer's first step). Building makes transient copies (a 4-bit
    model is quantized from fp32 weights as they load); the training phase starts after
    freed memory is handed back to the system (``malloc_trim``), so its peak is what
    training needs: the weights as stored, gradients, optimizer state and activations.
    """
    import ctypes
    import json
    import shutil
    import tempfile
    import threading
    import time
    from pathlib import Path

    import psutil
    from transformers import TrainerCallback

    proc = psutil.Process()
    peak = {"build": 0, "train": 0}
    phase = ["build"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            rss = proc.memory_info().rss
            peak[phase[0]] = max(peak[phase[0]], rss)

    threading.Thread(target=sample, daemon=True).start()
    import peft  # noqa: F401  (the libraries are the runtime, part of the baseline)
    import torch
    import transformers  # noqa: F401

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:  # QLoRA is then unavailable anyway
        pass

    from ..engine import train

    class TrainingPhase(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            try:
                ctypes.CDLL("libc.so.6").malloc_trim(0)
            except OSError:  # not glibc: freed memory may stay counted
                pass
            phase[0] = "train"
            peak["train_start"] = proc.memory_info().rss

    runtime = proc.memory_info().rss
    cfg = RunConfig.from_dict(json.loads(config_json))
    tmp = Path(tempfile.mkdtemp(prefix="ftlab-probe-"))
    try:
        t0 = time.perf_counter()
        run = train(cfg, runs_dir=tmp / "runs", progress=False, callbacks=[TrainingPhase()])
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
        "runtime_bytes": runtime, "build_peak_bytes": peak["build"],
        "train_start_bytes": peak.get("train_start"), "train_peak_bytes": peak["train"],
        "training_bytes": peak["train"] - runtime, "build_bytes": peak["build"] - runtime,
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


LABELS = {name: label_of(name) for name in METHODS}
PARTS = ("weights", "gradients", "optimizer_state", "activations")


def benchmark_items(preset: str = "cpu") -> int:
    """How many benchmark items the ``bench`` evaluator scores in a preset."""
    from ..evaluate.suite import SUITE_PRESETS, benchmark_subset

    return len(benchmark_subset(SUITE_PRESETS[preset].benchmark_per_area))


def base_scores(runs: dict[str, Run]) -> dict[str, float | None]:
    """Task and benchmark scores of the unchanged base model: step 0 of a run whose method
    starts as the base (full fine-tuning, LoRA). Step 0 of prefix tuning is the base with a
    random prefix, of QLoRA the 4-bit base, of prompt tuning the base with a text prompt."""
    from ..methods import METHODS

    for arm in ("full", "lora", *runs):
        r = runs.get(arm)
        if r is not None and METHODS[r.config.method.name].starts_as_base:
            return {"task": r.metric("task.score", at="first"),
                    "bench": r.metric("bench.score", at="first")}
    return {"task": None, "bench": None}


def compare_numbers(runs: dict[str, Run], probes: dict[str, dict],
                    preset: str = "cpu") -> dict[str, dict[str, float]]:
    """Every measured number of the compare table, by method (raw units: bytes, shares).

    "Before" (``task_first``, ``bench_first``) is the unchanged base model for every method
    when a run that starts as the base is among ``runs`` (see ``base_scores``), so forgetting
    is measured from what the model knew; each run's own step 0 is kept as ``task_start`` and
    ``bench_start``."""
    n_bench = benchmark_items(preset)
    base = base_scores(runs)
    out = {}
    for arm, r in runs.items():
        f, p = r.final, probes.get(arm, {})
        t0 = r.metric("task.score", at="first")
        s0 = r.metric("bench.score", at="first")
        b0 = s0 if base["bench"] is None else base["bench"]
        b1 = r.metric("bench.score")
        lo, hi = change_interval(b0, b1, n_bench) if None not in (b0, b1) else (None, None)
        out[arm] = {
            "share_%": f["params"]["percent"], "trainable": f["params"]["trainable"],
            "val_first": f["first_val_loss"], "val_final": f["final_val_loss"],
            "task_first": t0 if base["task"] is None else base["task"],
            "task_final": r.metric("task.score"), "task_start": t0,
            "bench_first": b0, "bench_final": b1, "bench_start": s0,
            "bench_change": None if b0 is None else b1 - b0, "bench_lo": lo, "bench_hi": hi,
            "step_s": f["step_time_s"],
            "measured_bytes": p.get("training_bytes"), "build_bytes": p.get("build_bytes"),
            "saved_bytes": p.get("saved_bytes"),
            **{part: f["memory_breakdown"][part] for part in PARTS},
            "analytic_bytes": f["memory_breakdown"]["total"],
        }
    return out


def compare_rows(numbers: dict[str, dict[str, float]]) -> list[dict]:
    """The course table, measured: one display row per method."""
    mb = 2**20

    def pct(x):
        return "" if x is None else f"{100 * x:.0f}%"

    rows = []
    for arm, m in numbers.items():
        rows.append({
            "method": LABELS.get(arm, arm),
            "params updated": f"{m['share_%']:.3g}%",
            "peak memory, measured (MB)": ("" if m["measured_bytes"] is None
                                           else round(m["measured_bytes"] / mb)),
            "analytic: weights / grads / optimizer / activations (MB)": " / ".join(
                f"{m[p] / mb:.0f}" for p in PARTS),
            "val loss": f"{m['val_first']:.2f} → {m['val_final']:.2f}",
            "task score": f"{pct(m['task_first'])} → {pct(m['task_final'])}",
            "benchmark change (95% CI)": ("" if m["bench_change"] is None else
                                          f"{100 * m['bench_change']:+.0f} pts "
                                          f"({100 * m['bench_lo']:+.0f} to "
                                          f"{100 * m['bench_hi']:+.0f})"),
            "s / step": round(m["step_s"], 2),
            "saved on disk (MB)": ("" if m["saved_bytes"] is None
                                   else f"{m['saved_bytes'] / mb:.3g}"),
        })
    return rows


# -- the course table's claims, checked row by row ---------------------------------------
CLAIMS = {  # the table every learner is shown (issue 9), column by column
    "full": {"params": "100%", "memory": "very high", "forgetting": "high",
             "quality": "highest"},
    "lora": {"params": "0.1–1%", "memory": "low", "forgetting": "low",
             "quality": "near-full"},
    "qlora": {"params": "0.1–1%", "memory": "very low", "forgetting": "low",
              "quality": "slightly below LoRA"},
    "prefix": {"params": "~0.1%", "memory": "low", "forgetting": "very low",
               "quality": "moderate"},
    "prompt": {"params": "~0.01%", "memory": "very low", "forgetting": "very low",
               "quality": "lower than LoRA"},
}
# "~x%" is read as within a factor of about 3 of x
SHARE_CLAIMS = {"full": (100.0, 100.0), "lora": (0.1, 1.0), "qlora": (0.1, 1.0),
                "prefix": (0.03, 0.3), "prompt": (0.003, 0.03)}
VERY_HIGH = 1.5  # full's memory at least this many times any other method's
LOW = 0.67  # "low": at most this share of full fine-tuning's memory
VERY_LOW = 0.8  # "very low": at most this share of LoRA's memory
SLIGHTLY = 0.10  # "slightly below": a gap whose whole interval lies further down is not slight
AGREES, DISAGREES, CANNOT_TELL = "agrees", "does not agree", "cannot tell"


def _direction(lo: float, hi: float, expected: str) -> str:
    """Verdict on a difference's 95% interval: ``expected`` is "above" or "below" 0."""
    if lo <= 0 <= hi:
        return CANNOT_TELL
    return AGREES if (lo > 0) == (expected == "above") else DISAGREES


def agreement(numbers: dict[str, dict[str, float]], task_rows: int,
              bench_items: int) -> dict[str, dict[str, dict]]:
    """Each cell of the course table against its measurement: by method and column, the
    claim, what was measured and a verdict (agrees / does not agree / cannot tell).

    - params: the measured share inside the claimed range (``SHARE_CLAIMS``);
    - memory (the fresh-process peak, else the analytic total): full "very high" if at
      least ``VERY_HIGH`` × every other method's; "low" if at most ``LOW`` × full's;
      "very low" if at most ``VERY_LOW`` × LoRA's;
    - forgetting: the benchmark change's 95% interval; a drop that excludes 0 agrees with
      "high" and disagrees with "low"/"very low", a rise the reverse; an interval holding 0
      cannot tell (nor can it tell "low" from "very low");
    - quality: the task score's difference from a reference method (full: the best other
      method; LoRA: full; QLoRA, prefix, prompt: LoRA), with its 95% interval; one that
      holds 0 cannot tell. "Near-full" agrees unless significantly below full; "slightly
      below" does not agree when even the interval's top is more than ``SLIGHTLY`` below.
    """
    def mem(a):
        m = numbers[a]
        return m["measured_bytes"] if m.get("measured_bytes") is not None \
            else m["analytic_bytes"]

    out: dict[str, dict[str, dict]] = {}
    for arm, m in numbers.items():
        claim, cells = CLAIMS[arm], {}
        lo, hi = SHARE_CLAIMS[arm]
        share = m["share_%"]
        cells["params"] = {"measured": f"{share:.3g}%",
                           "verdict": AGREES if lo * (1 - 1e-9) <= share <= hi * (1 + 1e-9)
                           else DISAGREES}
        mb = mem(arm) / 2**20
        if arm == "full":
            others = [mem(a) for a in numbers if a != "full"]
            ok = bool(others) and mem("full") >= VERY_HIGH * max(others)
            measured = (f"{mb:.0f} MB, {mem('full') / max(others):.1f}× the next"
                        if others else f"{mb:.0f} MB")
        elif claim["memory"] == "low" and "full" in numbers:
            ok = mem(arm) <= LOW * mem("full")
            measured = f"{mb:.0f} MB, {mem(arm) / mem('full'):.0%} of full's"
        elif "lora" in numbers and arm != "lora":
            ok = mem(arm) <= VERY_LOW * mem("lora")
            measured = f"{mb:.0f} MB, {mem(arm) / mem('lora'):.0%} of LoRA's"
        else:
            ok, measured = None, f"{mb:.0f} MB"
        cells["memory"] = {"measured": measured, "verdict": CANNOT_TELL if ok is None
                           else AGREES if ok else DISAGREES}
        if m.get("bench_change") is None:
            cells["forgetting"] = {"measured": "not measured", "verdict": CANNOT_TELL}
        else:
            verdict = _direction(m["bench_lo"], m["bench_hi"], "above")  # a rise
            if claim["forgetting"] == "high" and verdict != CANNOT_TELL:
                verdict = DISAGREES if verdict == AGREES else AGREES
            cells["forgetting"] = {
                "measured": f"{100 * m['bench_change']:+.0f} pts ({100 * m['bench_lo']:+.0f} "
                            f"to {100 * m['bench_hi']:+.0f}, {bench_items} items)",
                "verdict": verdict}
        if arm == "full":
            rivals = [a for a in numbers if a != "full"]
            ref = max(rivals, key=lambda a: numbers[a]["task_final"]) if rivals else None
        else:
            ref = "full" if arm == "lora" else "lora"
        if ref is None or ref not in numbers or ref == arm:
            cells["quality"] = {"measured": f"{100 * m['task_final']:.0f}%",
                                "verdict": CANNOT_TELL}
        else:
            a, b = numbers[ref]["task_final"], m["task_final"]
            dlo, dhi = change_interval(a, b, task_rows)
            if arm == "full":
                verdict = _direction(dlo, dhi, "above")
            elif arm == "lora":
                verdict = DISAGREES if dhi < 0 else AGREES if dlo > 0 else CANNOT_TELL
            else:
                verdict = _direction(dlo, dhi, "below")
                if claim["quality"].startswith("slightly") and dhi < -SLIGHTLY:
                    verdict = DISAGREES  # below, but by far more than slightly
            cells["quality"] = {
                "measured": f"{100 * b:.0f}% vs {LABELS[ref]} {100 * a:.0f}% "
                            f"({100 * (b - a):+.0f} pts, {100 * dlo:+.0f} to {100 * dhi:+.0f})",
                "verdict": verdict}
        for col, cell in cells.items():
            cell["claim"] = claim[col]
        out[arm] = cells
    return out


def agreement_rows(cells: dict[str, dict[str, dict]]) -> list[dict]:
    """One display row per method: each column as "claim → measured: verdict"."""
    rows = []
    for arm, cols in cells.items():
        row = {"method": LABELS.get(arm, arm)}
        for col, c in cols.items():
            row[col] = f"{c['claim']} → {c['measured']}: {c['verdict']}"
        tally = [c["verdict"] for c in cols.values()]
        row["agrees / not / cannot tell"] = (f"{tally.count(AGREES)} / {tally.count(DISAGREES)}"
                                             f" / {tally.count(CANNOT_TELL)}")
        rows.append(row)
    return rows


def train_seq_len(cfg: RunConfig) -> int:
    """The longest tokenized training row of a config (what the analytic breakdown uses)."""
    from ..engine import load_splits, tokenize_splits
    from ..models import load_tokenizer

    cfg = cfg.resolved()
    train_rows, _ = tokenize_splits(cfg, load_splits(cfg), load_tokenizer(cfg.model))
    return max(len(r["input_ids"]) for r in train_rows)


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        _probe_main(sys.argv[2])
    else:
        raise SystemExit("usage: python -m ftlab.labs.methods --measure CONFIG_JSON")
