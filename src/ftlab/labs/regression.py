"""Lab 5: capability regression. What a narrow fine-tune costs elsewhere, read two ways.

The claim to test (Biderman et al., 2024, *LoRA Learns Less and Forgets Less*): narrow
fine-tuning degrades what the model could do outside the task, full fine-tuning more than
LoRA; replaying general data during training guards against it. The lesson underneath
is about instruments: the broad benchmark *scored by log-likelihood* (which choice the
model finds likeliest) can stay level or even rise after a fine-tune that left the model
unable to *answer* anything but "positive". So the same benchmark items are also asked for a
generated answer, and the other tasks are scored by generation (``ftlab.evaluate.behaviour``);
the log-likelihood reading comes with its controls (per character, the shortest-choice pick
and baseline), and no claim that "the knowledge is still inside": 30 items cannot bound a
fall that small.

The runs are Lab 3's (``ftlab.labs.collapse``: same arms, sizes and evaluators, so the run
cache trains each once), plus ``lora_r2`` (a smaller LoRA rank) and ``extreme`` (full
fine-tuning at five times the aggressive rate, looking for a setting where even the
log-likelihood view falls: at this budget there is none, it fell 0.10 inside its interval
while the target was no longer learned). The check reads ``aggressive`` and ``gentle`` over
three seeds; the others are measured on the first (``sweep(seeds=(0,), arms=...)``, or
all of them with ``sweep(more=True)``). Figures and tables: ``show_regression``.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from ..evaluate.behaviour import item_values, paired_diff, pooled_values, run_paired
from ..runs import Run
from . import collapse
from .base import LabResult
from .calibration import CPU_2_CORES, Calibration, by_seed
from .collapse import ARMS, LEARNED, NarrowFinetune, narrow_presets

ELSEWHERE = ("other.item/", "bench.gen_item/")  # generated answers outside the task

# Measured on the CPU preset, seeds 0 / 1 / 2 (the notebook's table shows these), 2026-12-07:
# change after - before, with its 95% interval, elsewhere (generated, pooled: 46 items), on the
# benchmark's 30 items read by summed log-likelihood, per character and by generated answer;
# how often the summed pick is the shortest choice; the generated change minus the
# log-likelihood change item by item (``views_gap``); and the gentle run's score elsewhere
# minus the aggressive run's. The target task scores are Lab 3's (the same runs).
MEASURED: dict[str, tuple[float, ...]] = {
    "aggressive.elsewhere_change": (-0.29, -0.27, -0.29),
    "aggressive.elsewhere_ci_low": (-0.42, -0.41, -0.42),
    "aggressive.elsewhere_ci_high": (-0.16, -0.13, -0.16),
    "aggressive.gen_change": (-0.30, -0.27, -0.30),
    "aggressive.ll_change": (0.13, 0.10, 0.10),
    "aggressive.ll_ci_low": (-0.08, -0.13, -0.17),
    "aggressive.ll_ci_high": (0.35, 0.33, 0.37),
    "aggressive.lln_change": (0.20, 0.27, 0.10),
    "aggressive.short_change": (0.10, 0.13, 0.13),
    "aggressive.views_gap_change": (-0.43, -0.37, -0.40),
    "aggressive.views_gap_ci_high": (-0.18, -0.10, -0.08),
    "gentle.elsewhere_change": (-0.14, -0.12, -0.12),
    "gentle.elsewhere_ci_low": (-0.31, -0.28, -0.28),
    "gentle.elsewhere_ci_high": (0.03, 0.05, 0.05),
    "gentle.ll_change": (0.07, 0.03, 0.07),
    "gentle.ll_ci_low": (-0.10, -0.12, -0.10),
    "gentle.ll_ci_high": (0.24, 0.19, 0.24),
    "gentle_vs_aggressive": (0.15, 0.15, 0.17),
    "gentle_vs_aggressive_ci_low": (0.04, 0.04, 0.06),
}
CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 12, 7),
    per_seed=by_seed({**{k: collapse.MEASURED[k] for k in ("aggressive.task", "gentle.task")},
                      **MEASURED}),
    wall="Lab 3's runs (2 arms x 3 seeds): about 4-10 minutes",
    source="ftlab.labs.regression.MEASURED, ftlab.labs.collapse.MEASURED (task scores)")


def elsewhere_paired(run: Run) -> tuple[float, float, float]:
    """Change in generated-answer score outside the task (other tasks' rows and benchmark
    items pooled, each item once), with the 95% interval of the paired difference."""
    before, after = pooled_values(run, ELSEWHERE, "first"), pooled_values(run, ELSEWHERE)
    ids = sorted(set(before) & set(after))
    return paired_diff([before[i] for i in ids], [after[i] for i in ids])


def views_paired(run: Run) -> tuple[float, float, float]:
    """How much further the generated reading of the benchmark items moves than their
    log-likelihood reading, item by item: (generated after − before) − (log-likelihood after
    − before), with the 95% interval. Below zero: the two instruments disagree beyond noise
    on the same items, the generated answers falling further."""
    changes = {}
    for view in ("gen", "ll"):
        prefix = f"bench.{view}_item/"
        before, after = item_values(run, prefix, "first"), item_values(run, prefix)
        changes[view] = {i: after[i] - before[i] for i in after if i in before}
    ids = sorted(set(changes["gen"]) & set(changes["ll"]))
    return paired_diff([changes["ll"][i] for i in ids], [changes["gen"][i] for i in ids])


def direction(low: float, high: float) -> str:
    """"fell", "rose" or "cannot tell": a change is called only where its whole 95% interval
    lies on one side of zero."""
    return "fell" if high < 0 else "rose" if low > 0 else "cannot tell"


def reading(change: float, low: float, high: float) -> str:
    """A change with its 95% interval, in words (``direction``). Where the data cannot tell,
    the largest fall it does not rule out is said: an interval that contains zero is no
    evidence of "no change"."""
    if math.isnan(change):
        return "not measured"
    word = direction(low, high)
    said = f"{word} ({change:+.2f}, 95% interval [{low:+.2f}, {high:+.2f}])"
    return said if word != "cannot tell" else f"{said}: a fall of up to {-low:.2f} is not ruled out"


def regression_numbers(run: Run, arm: str) -> dict[str, float]:
    """One run's numbers: the target gained, the rest lost (generated) and the LL view."""
    m: dict[str, float] = {
        f"{arm}.task_before": run.metric("task.score", "first"),
        f"{arm}.task": run.metric("task.score"),
        f"{arm}.val_drop": run.final["first_val_loss"] - run.final["final_val_loss"]}
    for name, prefix in (("other", "other.item/"), ("gen", "bench.gen_item/"),
                         ("ll", "bench.ll_item/"), ("lln", "bench.lln_item/"),
                         ("short", "bench.ll_short_item/")):
        d, lo, hi = run_paired(run, prefix)
        m.update({f"{arm}.{name}_change": d, f"{arm}.{name}_ci_low": lo,
                  f"{arm}.{name}_ci_high": hi})
    for name, paired in (("elsewhere", elsewhere_paired), ("views_gap", views_paired)):
        d, lo, hi = paired(run)
        m.update({f"{arm}.{name}_change": d, f"{arm}.{name}_ci_low": lo,
                  f"{arm}.{name}_ci_high": hi})
    return m


class Regression(NarrowFinetune):
    """A narrow fine-tune loses generated answers elsewhere, a gentler one less; the
    log-likelihood reading of the same items does not move with the generated one."""

    title = "Lab 5 · Capability regression"
    presets = narrow_presets({**ARMS, "lora_r2": {"method": "lora", "lr": 1e-3, "r": 2},
                              "extreme": {"method": "full", "lr": 1e-3}},
                             extra=("lora", "mixed", "lora_r2", "extreme"),
                             calibration=CALIBRATION)
    claim = ("After the aggressive fine-tune the target task is learned (score >= "
             f"{LEARNED:.0%}) and the generated-answer score elsewhere (the other tasks' rows "
             "and the benchmark items asked in words, pooled) falls: the 95% interval of the "
             "paired difference lies below zero. With a gentler schedule the target is still "
             "learned and more is kept: the 95% interval of the gentle run's score minus the "
             "aggressive run's, item by item, lies above zero. The two readings of the same "
             "benchmark items disagree beyond noise: after the aggressive fine-tune the "
             "generated answers fall further than the log-likelihood ranking moves (the 95% "
             "interval of the paired difference of their changes lies below zero). Whether "
             "the log-likelihood reading itself fell is not claimed either way: with 30 items "
             "its interval cannot rule out a small fall.")
    metrics = {"probe pass rate (live subset)": ["probes.live"]}
    number_names = {  # ``regression_numbers``, each arm's; a change is after − before
        "task_before": "target task score before training",
        "task": "target task score after training",
        "val_drop": "fall in validation loss (nats)",
        **{f"{name}_{part}": words + end
           for name, words in (("other", "change on the other tasks (generated)"),
                               ("gen", "change on the benchmark (generated)"),
                               ("ll", "change on the benchmark (log-likelihood)"),
                               ("lln", "change on the benchmark (log-likelihood per character)"),
                               ("short", "change in summed-log-likelihood picks of the "
                                         "shortest choice"),
                               ("elsewhere", "change elsewhere (generated, pooled)"),
                               ("views_gap", "generated minus log-likelihood change, "
                                             "benchmark items (paired)"))
           for part, end in (("change", ""), ("ci_low", ", 95% interval, low end"),
                             ("ci_high", ", 95% interval, high end"))},
        **{f"gentle_vs_aggressive{part}": "gentle minus aggressive elsewhere, after" + end
           for part, end in (("", " (paired)"), ("_ci_low", ", 95% interval, low end"),
                             ("_ci_high", ", 95% interval, high end"))},
    }

    arm_numbers = staticmethod(regression_numbers)
    compared_on = ELSEWHERE

    def conditions(self, m: dict[str, float]) -> dict[str, bool]:
        return {
            "aggressive: target learned": m["aggressive.task"] >= LEARNED,
            "gentle: target learned": m["gentle.task"] >= LEARNED,
            "aggressive: loses elsewhere beyond noise": m["aggressive.elsewhere_ci_high"] < 0,
            "gentle: keeps more, beyond noise": m["gentle_vs_aggressive_ci_low"] > 0,
            "the two readings disagree beyond noise": m["aggressive.views_gap_ci_high"] < 0,
        }


def regression_table(result: LabResult, seed: int = 0) -> list[dict[str, Any]]:
    """One row per arm of a seed: target before/after, generated and LL changes with
    their intervals."""
    rows = []
    for arm, run in result.by_seed(seed).items():
        m = regression_numbers(run, arm)
        rows.append({"arm": arm, "task": f"{m[f'{arm}.task_before']:.2f} -> "
                     f"{m[f'{arm}.task']:.2f}", "other tasks (gen)": _ci(m, arm, "other"),
                     "benchmark (gen)": _ci(m, arm, "gen"),
                     "elsewhere (gen, pooled)": _ci(m, arm, "elsewhere"),
                     "benchmark (LL)": _ci(m, arm, "ll")})
    return rows


def _ci(m: dict[str, float], arm: str, name: str) -> str:
    d, lo, hi = (m[f"{arm}.{name}_change"], m[f"{arm}.{name}_ci_low"], m[f"{arm}.{name}_ci_high"])
    return "n/a" if math.isnan(d) else f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]"
