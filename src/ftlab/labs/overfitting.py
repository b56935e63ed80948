"""Lab 1: overfitting on a small dataset, and two mitigations (early stopping, more data).

The claim: with few examples a fine-tuned model memorises them instead of learning the
task. Validation loss (on held-out questions) falls, reaches a minimum and climbs again
while training loss goes to zero; the model now repeats its training answers word for word
but gets new questions of the same kind no more right than before. Early stopping with the
best weights restored ends the run at the minimum; more data (same steps) keeps the gap
between training and validation loss small.

Arms (all LoRA r=8, lr 1e-3, arithmetic word problems, same steps):

- ``small``: few training examples, enough steps to see many epochs of them;
- ``early_stop``: the same run with early stopping (patience) and the best weights restored;
- ``more_data``: the same steps on many more examples (each seen about once).

Sizes differ by preset (``Overfitting.presets``: the CPU values were measured over three
seeds to take about two minutes for the whole sweep on 2 cores; the GPU values are
classroom scale). Figures and tables: ``show_overfitting``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from statistics import mean

from ..config import RunConfig
from ..evaluate.result import EvalResult
from ..evaluate.task import answer_rows, score_answer
from .base import Lab, Preset
from .calibration import CPU_2_CORES, Calibration, by_seed

# -- the memorisation probe -------------------------------------------------------------


def verbatim(text: str, answer: str) -> bool:
    """Is ``text`` the training answer, word for word? Exact string match, surrounding
    whitespace aside: "The answer is 24." repeats "The answer is 24."; "24", "The answer is
    24" (no full stop) or "The answer is 24. Well done!" do not."""
    return text.strip() == answer.strip()


def memorisation_scores(train_rows: Sequence[dict], held_rows: Sequence[dict],
                        train_texts: Sequence[str], held_texts: Sequence[str],
                        task: str) -> dict[str, float]:
    """The probe's numbers from answers already generated, one text per row.

    ``*_verbatim``: share answered with the row's reference answer word for word
    (``verbatim``); ``*_correct``: share answered correctly by the one definition of a
    correct answer (``ftlab.evaluate.task.score_answer``, averaged over an answer's parts as
    ``task_score`` does; for arithmetic, the last number is the right one); ``gap``:
    ``train_verbatim - heldout_correct``.
    """
    def shares(rows, texts) -> tuple[float, float]:
        if not rows:
            return math.nan, math.nan
        exact = mean(verbatim(t, r["messages"][-1]["content"]) for r, t in zip(rows, texts))
        correct = mean(mean(score_answer(task, t, r["meta"]).values())
                       for r, t in zip(rows, texts))
        return float(exact), float(correct)

    train_verbatim, train_correct = shares(train_rows, train_texts)
    held_verbatim, held_correct = shares(held_rows, held_texts)
    return {"train_verbatim": train_verbatim, "train_correct": train_correct,
            "heldout_verbatim": held_verbatim, "heldout_correct": held_correct,
            "gap": train_verbatim - held_correct, "n_train": float(len(train_rows)),
            "n_heldout": float(len(held_rows))}


@dataclass(frozen=True)
class MemorisationProbe:
    """Verbatim recall of training answers against accuracy on held-out questions.

    Asks the model (greedy, the task's answer budget) the questions of the run's first
    ``train_rows`` training rows and of its first ``heldout_rows`` held-out test rows (the
    same kind of question, never trained on), and reports ``memorisation_scores``.
    Memorising shows as ``train_verbatim`` far above ``heldout_correct``.

    It generates, so it runs only before training and on the returned model (``when``).
    Before training the model is the base for LoRA and full fine-tuning; those answers are
    kept on disk (``ftlab.evaluate.cache``) and shared by every arm of a seed: the arms'
    first training rows are the same rows (a larger size adds rows to a smaller one's).
    """

    train_rows: int = 12
    heldout_rows: int = 16
    when: str = "ends"

    @property
    def key(self) -> str:
        return f"overfitting.memorisation:{self.train_rows}:{self.heldout_rows}:{self.when}"

    def __call__(self, model, tok, ctx) -> EvalResult:
        from ..evaluate.cache import base_scored

        cfg = ctx.config
        task = cfg.data.scored_as
        train = list(ctx.splits.train[: self.train_rows])
        held = list(ctx.splits.test[: self.heldout_rows])

        def compute() -> EvalResult:
            answers = [a.text for a in answer_rows(model, tok, train + held, task,
                                                   batch_size=len(train + held),
                                                   progress=False)]
            numbers = memorisation_scores(train, held, answers[:len(train)],
                                          answers[len(train):], task)
            return EvalResult("memorisation", numbers["gap"], len(train) + len(held),
                              extra=numbers)

        return base_scored(ctx, compute, suite=self.key, rows=train + held)


# -- the lab ------------------------------------------------------------------------------
# Measured on the CPU preset, seeds 0 / 1 / 2 (the notebook's tables and docs/instructor.md
# show these): validation losses in nats, memorisation as shares of 12 training and 16
# held-out questions. Seed 2's minimum as the notebook and docs give it (0.57; this comment
# used to say 0.58: its end, 1.73, is +200% and +1.15 nats above it, so about 0.575).
MEASURED: dict[str, tuple[float, ...]] = {
    "small.min_val": (0.48, 0.51, 0.57),
    "small.end_val": (1.13, 1.11, 1.73),
    "early.stop_step": (8, 8, 8),
    "early.returned_val": (0.51, 0.51, 0.57),
    "small.gap": (1.03, 1.00, 1.42),
    "more.gap": (-0.15, -0.17, -0.03),
    "more.end_val": (0.31, 0.74, 0.57),  # measured 2026-12-07 (the same runs, rerun)
    "memo.train_verbatim": (1.00, 0.92, 1.00),
    "memo.heldout_correct": (0.19, 0.13, 0.00),
}
CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 11, 26), per_seed=by_seed(MEASURED),
    wall="about 2 minutes for the sweep (3 arms x 3 seeds)",
    source="ftlab.labs.overfitting.MEASURED")

# The check's margins (see ``Overfitting.conditions``), set from ``MEASURED``: the small
# run's minimum varies by sd 0.05 from seed to seed, and the validation curve jitters by
# about 0.2 between evaluations.
RISE = 0.20  # the small run ends at least this far (relative) above its minimum ...
RISE_ABS = 0.30  # ... and this far in nats: 6x the minimum's seed-to-seed sd, above the jitter
NEAR = 2  # early stopping ends within this many evaluations of the minimum it found ...
NEAR_TOL = 0.10  # ... which is the small run's minimum within 10% (about its seed-to-seed sd)
SEPARATION = 0.5  # verbatim recall of training answers minus held-out accuracy


class Overfitting(Lab):
    """Few examples, many epochs: validation loss turns up; stop early or add data."""

    title = "Lab 1 · Overfitting on a small dataset"
    claim = ("With few training examples, validation loss reaches its minimum before the end "
             f"of training and ends at least {RISE:.0%} (and {RISE_ABS} nats) above it; "
             f"early stopping stops within {NEAR} evaluations of that minimum and returns the "
             "weights of its best evaluation, as good as the minimum (within "
             f"{NEAR_TOL:.0%}); with more data (same steps) the validation loss ends at least "
             f"{RISE_ABS} nats lower than the small run's, with a smaller train-validation gap; "
             "and the small-data model repeats its training answers verbatim far more "
             f"often (by {SEPARATION:.0%} or more of the questions) than it answers new "
             "questions right.")
    # LoRA dropout 0.05 (ftlab's default when the margins were measured): at PEFT's 0 the
    # small run of seed 0 ended 0.27 nats above its minimum (0.78 against 1.13 with it),
    # under RISE_ABS, so the lab keeps the setting its margins come from
    base = RunConfig(method="lora", preset="auto").replace(
        task="arithmetic", **{"eval.samples": 0, "method.dropout": 0.05})
    presets = {
        "cpu": Preset(
            base={"steps": 18, "batch_size": 4, "lr": 3e-3, "eval_every": 2,
                  "data.val_size": 8, "data.max_length": 96},
            arms={"small": {"size": 12}, "early_stop": {"size": 12, "patience": 2},
                  "more_data": {"size": 96}},
            watch={"memo": MemorisationProbe(train_rows=12, heldout_rows=16)},
            calibration=CALIBRATION),
        "gpu": Preset(
            base={"steps": 200, "batch_size": 16, "lr": 1e-3, "eval_every": 10,
                  "data.val_size": 100, "data.max_length": 128},
            arms={"small": {"size": 64}, "early_stop": {"size": 64, "patience": 3},
                  "more_data": {"size": 3200}},
            watch={"memo": MemorisationProbe(train_rows=64, heldout_rows=128)}),
    }
    knobs = {"size": (10, 2000), "steps": (4, 200), "lr": (1e-5, 1e-1), "patience": (0, 10),
             "eval_every": (1, 50)}
    metrics = {"memorisation (before and after)": ["memo.train_verbatim",
                                                   "memo.heldout_correct"]}
    # ``small.*`` by the part after the arm; ``early.``, ``more.`` and ``memo.`` name no arm
    # (the early_stop and more_data runs, and the probe of the small run), so in full.
    number_names = {
        "steps": "training steps",
        "min_step": "step of the lowest validation loss",
        "min_val": "lowest validation loss (nats)",
        "end_val": "validation loss at the end (nats)",
        "rise": "rise of validation loss, lowest to end (relative)",
        "gap": "final gap, validation − training loss (nats)",
        "early.stop_step": "early_stop: step it stopped at",
        "early.evals_after_best": "early_stop: evaluations from its best to the stop",
        "early.best_val": "early_stop: its lowest validation loss (nats)",
        "early.returned_val": "early_stop: validation loss of the model returned (nats)",
        "more.end_val": "more_data: validation loss at the end (nats)",
        "more.gap": "more_data: final gap, validation − training loss (nats)",
        "memo.before": "small: train verbatim before training (share)",
        "memo.train_verbatim": "small: train verbatim after training (share)",
        "memo.heldout_correct": "small: held-out correct after training (share)",
    }

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs) -> dict[str, float]:
        small, early, more = runs["small"], runs["early_stop"], runs["more_data"]
        fs, fe, fm = small.final, early.final, more.final
        every = small.config.eval.every
        return {
            "steps": fs["steps"],
            "small.min_step": fs["best_step"],
            "small.min_val": fs["best_val_loss"],
            "small.end_val": fs["final_val_loss"],
            "small.rise": fs["final_val_loss"] / fs["best_val_loss"] - 1,
            "early.stop_step": fe["steps"],
            "early.evals_after_best": (fe["steps"] - fe["best_step"]) / every,
            "early.best_val": fe["best_val_loss"],
            "early.returned_val": fe["final_val_loss"],
            "small.gap": fs["final_val_loss"] - end_train_loss(small),
            "more.end_val": fm["final_val_loss"],
            "more.gap": fm["final_val_loss"] - end_train_loss(more),
            "memo.before": small.metric("memo.train_verbatim", at="first"),
            "memo.train_verbatim": small.metric("memo.train_verbatim"),
            "memo.heldout_correct": small.metric("memo.heldout_correct"),
        }

    def conditions(self, m) -> dict[str, bool]:
        return {
            "val loss turns up": (m["small.min_step"] < m["steps"]
                                  and m["small.rise"] >= RISE
                                  and m["small.end_val"] - m["small.min_val"] >= RISE_ABS),
            "early stop near the min": (m["early.stop_step"] < m["steps"]
                                        and 0 < m["early.evals_after_best"] <= NEAR
                                        and m["early.returned_val"]
                                        <= (1 + NEAR_TOL) * m["small.min_val"]),
            "returned = best": (math.isclose(m["early.returned_val"], m["early.best_val"],
                                             rel_tol=1e-4, abs_tol=1e-6)
                                and m["early.returned_val"] * (1 + RISE) <= m["small.end_val"]),
            "more data: ends lower, smaller gap": (
                m["more.end_val"] <= m["small.end_val"] - RISE_ABS
                and m["more.gap"] < m["small.gap"]),
            "memorises": (m["memo.train_verbatim"] - m["memo.heldout_correct"] >= SEPARATION
                          and m["memo.before"] < m["memo.train_verbatim"]),
        }


def end_train_loss(run, window: int | None = None) -> float:
    """Training loss at the end: the mean over the last evaluation interval's steps (one
    batch's loss is noisy; the interval is what the last validation loss is compared to)."""
    window = window or run.config.eval.every
    losses = [s["loss"] for s in run.steps][-window:]
    return float(mean(losses)) if losses else math.nan


def memorisation_rows(result) -> list[dict]:
    """The probe's numbers per seed and arm, before training and on the returned model."""
    rows = []
    for (arm, seed), run in sorted(result.runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows.append({"seed": seed, "arm": arm, "examples": run.config.data.size,
                     "train verbatim before": run.metric("memo.train_verbatim", "first"),
                     "train verbatim after": run.metric("memo.train_verbatim", "final"),
                     "held-out correct before": run.metric("memo.heldout_correct", "first"),
                     "held-out correct after": run.metric("memo.heldout_correct", "final")})
    return rows
