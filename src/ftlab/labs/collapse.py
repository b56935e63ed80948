"""Lab 3: instruction-following collapse, and what keeps a model flexible.

The claim: aggressive fine-tuning on one narrow task (a review in, "positive" or "negative"
out) makes the model rigid. Asked anything else ("answer in capitals", "three bullet
points", "reply in JSON") it answers in the task's form, one word, and fails instructions
it followed before; the task itself is learned perfectly. Gentler training (a lower
learning rate), LoRA instead of full fine-tuning, or general instruction data mixed into
training (``data.mix_share``, ``ftlab.data.mix``) are the mitigations, each measured.

The instrument is non-vacuous (``ftlab.evaluate.probes``): a probe passes only when the
answer keeps the format *and* is on topic with substance, so "positive" does not pass
"answer in lowercase". Two numbers show collapse: the probe pass rate falls and the share
of open prompts answered in the training form rises. The arms and evaluators are those of
Lab 5 (``ftlab.labs.regression``), so each run is trained once for both labs.

Arms (sentiment, the same steps and data; sizes by preset, ``BASES``):

- ``aggressive``: full fine-tuning at a high learning rate;
- ``gentle``: the same at a tenth of the learning rate;
- ``lora``: LoRA (rank 8) at its own usual learning rate;
- ``mixed``: the aggressive run with half of its training rows general instructions.

``lab.sweep()`` runs the checked arms, ``aggressive`` and ``gentle``, over three seeds
(``CHECKED``); ``lab.sweep(seeds=(0,), arms=("lora", "mixed"))`` the other two (or
``lab.sweep(more=True)``: all four, the other two on the first seed). Figures and tables:
``show_collapse``. Measured
at this budget (135M, 12 steps, seeds 0-2): only the gentler schedule keeps most of the base
pass rate; LoRA at its usual rate collapses too (to a few words, not the label), and the mix
keeps the answers long but not their formats (it holds no formatting instruction: it
teaches what it contains).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from typing import Any

from ..config import RunConfig
from ..evaluate.behaviour import Sizes, behaviour_watch, run_paired, runs_paired
from ..runs import Run
from .base import Lab, LabResult, Preset
from .calibration import CPU_2_CORES, Calibration, by_seed

# -- the arms ----------------------------------------------------------------------------
ARMS: dict[str, dict[str, Any]] = {
    "aggressive": {"method": "full", "lr": 2e-4},
    "gentle": {"method": "full", "lr": 2e-5},
    "lora": {"method": "lora", "lr": 1e-3},
    "mixed": {"method": "full", "lr": 2e-4, "mix_share": 0.5},
}
# The arms watched live (every LIVE_EVERY steps: the probe pass rate falls as it trains);
# the others are evaluated before and after only, which keeps the sweep short.
LIVE_ARMS = ("aggressive",)
LIVE_EVERY = {"cpu": 4, "gpu": 25}
CHECKED = ("aggressive", "gentle")  # what ``sweep()`` runs, over every seed
BASES: dict[str, dict[str, Any]] = {
    # cpu: 12 steps of 4 rows (sentiment rows are ~50 tokens; general rows up to ~120).
    # At 8 steps the form is learned (one word, a label) but not yet the task (score 0.5).
    "cpu": {"task": "sentiment", "size": 64, "steps": 12, "batch_size": 4, "eval_every": 12,
            "data.val_size": 8, "data.max_length": 128, "eval.samples": 0},
    # gpu: classroom scale.
    "gpu": {"task": "sentiment", "size": 800, "steps": 150, "batch_size": 16,
            "eval_every": 150, "data.val_size": 100, "data.max_length": 256,
            "eval.samples": 0},
}


def narrow_presets(arms: dict[str, dict[str, Any]], extra: tuple[str, ...],
                   calibration: Calibration | None = None) -> dict:
    """Both presets of a narrow fine-tune lab: ``BASES``, the arms (the live ones evaluated
    every ``LIVE_EVERY`` steps), ``CHECKED`` on every seed, ``extra`` on the first with
    ``sweep(more=True)``, and the evaluators of Lab 3 and Lab 5 (one set: one cache entry);
    ``calibration`` is the cpu preset's (the gpu one has none yet)."""
    return {p: Preset(base=BASES[p], checked=CHECKED, extra=extra,
                      arms={arm: {**c, **({"eval_every": LIVE_EVERY[p]}
                                          if arm in LIVE_ARMS else {})}
                            for arm, c in arms.items()},
                      watch=behaviour_watch(p),
                      calibration=calibration if p == "cpu" else None)
            for p in ("cpu", "gpu")}


# -- the check's thresholds ---------------------------------------------------------------
LEARNED = 0.75  # task score (exact label on held-out reviews) that counts as learned
FORM_RISE = 0.25  # the training-form share rises at least this much under the aggressive run

# Measured on the CPU preset, seeds 0 / 1 / 2 (the notebook's table shows these): probe pass
# rate (24 probes) before and after, the paired drop with its 95% interval, the training-form
# share, the task score (16 held-out reviews). Lab 5 reads the same runs (``regression``).
MEASURED: dict[str, tuple[float, ...]] = {
    "aggressive.probes_before": (0.33, 0.33, 0.33),
    "aggressive.probes": (0.00, 0.00, 0.00),
    "aggressive.drop": (0.33, 0.33, 0.33),
    "aggressive.drop_ci_low": (0.13, 0.13, 0.13),
    "aggressive.drop_ci_high": (0.54, 0.54, 0.54),
    "aggressive.form_before": (0.00, 0.00, 0.00),
    "aggressive.form": (1.00, 0.71, 0.92),
    "aggressive.task": (1.00, 0.94, 1.00),
    "gentle.probes_before": (0.33, 0.33, 0.33),
    "gentle.probes": (0.29, 0.33, 0.25),
    "gentle.task": (1.00, 0.94, 1.00),
    # the gentle run's pass rate minus the aggressive run's, probe by probe (2026-12-07)
    "gentle_vs_aggressive": (0.29, 0.33, 0.25),
    "gentle_vs_aggressive_ci_low": (0.09, 0.13, 0.06),
}
CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 12, 7), per_seed=by_seed(MEASURED),
    wall="the sweep (2 arms x 3 seeds): about 4-10 minutes", source="ftlab.labs.collapse.MEASURED")


class NarrowFinetune(Lab):
    """The narrow fine-tune both failure labs share: arms, sizes, evaluators, sweep."""

    base = RunConfig(method="full", preset="auto")
    presets = narrow_presets(ARMS, extra=("lora", "mixed"))  # each lab adds its calibration
    sweep_more = False  # the extra arms: lab.sweep(more=True) or arms=[...]
    # the per-item outcomes on which the gentle run is compared with the aggressive one
    # (``gentle_vs_aggressive``: the paired interval of their scores after training)
    compared_on: tuple[str, ...] = ()
    knobs = {"lr": (1e-6, 1e-2), "steps": (2, 400), "task": None, "data.mix_share": (0.0, 0.9),
             "r": None}

    def __init__(self, runs_dir=None, *, sizes: Sizes | None = None, **changes: Any) -> None:
        """``changes`` apply to every arm; ``sizes`` replaces the evaluators' preset sizes."""
        super().__init__(runs_dir, **changes)
        if sizes is not None:
            self.watch = {k: replace(w, sizes=sizes) if hasattr(w, "sizes") else w
                          for k, w in self.watch.items()}

    def panel(self, arm: str | None = None, seed: int = 0, **kwargs: Any):
        """The lab's panel: full fine-tuning or LoRA, the knobs above."""
        kwargs.setdefault("methods", ("full", "lora"))
        return super().panel(arm, seed, **kwargs)

    def measure(self, runs: dict[str, Run]) -> dict[str, float]:
        """Each arm's numbers (``arm_numbers``), for the arms this seed has, and how much
        more the gentle run keeps than the aggressive one (``compared_on``)."""
        m: dict[str, float] = {}
        for arm in self.arms:
            if arm in runs:
                m.update(self.arm_numbers(runs[arm], arm))
        if self.compared_on and "gentle" in runs and "aggressive" in runs:
            d, lo, hi = runs_paired(runs["gentle"], runs["aggressive"], self.compared_on)
            m.update({"gentle_vs_aggressive": d, "gentle_vs_aggressive_ci_low": lo,
                      "gentle_vs_aggressive_ci_high": hi})
        return m

    @staticmethod
    def arm_numbers(run: Run, arm: str) -> dict[str, float]:
        """One run's numbers, keyed ``<arm>.<name>``: what the lab's claim is about."""
        raise NotImplementedError


def probe_numbers(run: Run, arm: str) -> dict[str, float]:
    """One run's collapse numbers, before training and on the returned model."""
    d, lo, hi = run_paired(run, "probes.pass/")
    return {f"{arm}.probes_before": run.metric("probes.score", "first"),
            f"{arm}.probes": run.metric("probes.score"),
            f"{arm}.drop_ci_low": -hi, f"{arm}.drop": -d, f"{arm}.drop_ci_high": -lo,
            f"{arm}.form_before": run.metric("probes.training_form_share", "first"),
            f"{arm}.form": run.metric("probes.training_form_share"),
            f"{arm}.words": run.metric("probes.words"),
            f"{arm}.task_before": run.metric("task.score", "first"),
            f"{arm}.task": run.metric("task.score")}


class Collapse(NarrowFinetune):
    """Aggressive narrow fine-tuning: probe pass rate falls, training form rises; a gentler
    schedule keeps most of the base pass rate."""

    title = "Lab 3 · Instruction-following collapse"
    presets = narrow_presets(ARMS, extra=("lora", "mixed"), calibration=CALIBRATION)
    claim = ("Under aggressive full fine-tuning on sentiment the task is learned (score >= "
             f"{LEARNED:.0%}) while the probe pass rate drops by more than its noise (the 95% "
             "interval of the paired difference, probe by probe, lies above zero) and the "
             f"share of probes answered in the training form rises by at least {FORM_RISE:.0%}"
             "; a gentler schedule (a tenth of the learning rate) still learns the task and "
             "keeps more of the pass rate than the aggressive run: the 95% interval of the "
             "gentle run's pass rate minus the aggressive run's, probe by probe, lies above "
             "zero.")
    metrics = {"probe pass rate (live subset)": ["probes.live"],
               "answers in the training form (live subset)": ["probes.live_training_form"]}
    number_names = {  # ``probe_numbers``, each arm's
        "probes_before": "probe pass rate before training",
        "probes": "probe pass rate after training",
        "drop": "drop in pass rate (paired, probe by probe)",
        "drop_ci_low": "drop in pass rate, 95% interval, low end",
        "drop_ci_high": "drop in pass rate, 95% interval, high end",
        "form_before": "training form before (share of probes)",
        "form": "training form after (share of probes)",
        "words": "words per answer after training",
        "task_before": "task score before training",
        "task": "task score after training",
        **{f"gentle_vs_aggressive{part}": "gentle minus aggressive pass rate, after" + end
           for part, end in (("", " (paired)"), ("_ci_low", ", 95% interval, low end"),
                             ("_ci_high", ", 95% interval, high end"))},
    }

    arm_numbers = staticmethod(probe_numbers)
    compared_on = ("probes.pass/",)

    def conditions(self, m: dict[str, float]) -> dict[str, bool]:
        return {
            "aggressive: task learned": m["aggressive.task"] >= LEARNED,
            "aggressive: pass rate drops beyond noise": m["aggressive.drop_ci_low"] > 0,
            "aggressive: training form rises": (m["aggressive.form"] - m["aggressive.form_before"]
                                                >= FORM_RISE),
            "gentle: task learned": m["gentle.task"] >= LEARNED,
            "gentle: keeps more than aggressive, beyond noise": (
                m["gentle_vs_aggressive_ci_low"] > 0),
        }


def arm_table(result: LabResult, seed: int = 0) -> list[dict]:
    """One row per arm of a seed: what the task gained and what the probes lost."""
    rows = []
    for arm, run in result.by_seed(seed).items():
        m = probe_numbers(run, arm)
        before = m[f"{arm}.probes_before"]
        rows.append({"arm": arm, "method": run.config.method.name,
                     "lr": run.config.train.learning_rate, "mix": run.config.data.mix_share,
                     "task before": m[f"{arm}.task_before"], "task after": m[f"{arm}.task"],
                     "probes before": before, "probes after": m[f"{arm}.probes"],
                     "kept": m[f"{arm}.probes"] / before if before else math.nan,
                     "training form": m[f"{arm}.form"],
                     "words per answer": m[f"{arm}.words"]})
    return rows
