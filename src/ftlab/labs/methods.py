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
