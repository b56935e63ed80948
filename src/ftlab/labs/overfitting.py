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

Sizes differ by preset: ``ARMS[preset]`` (the CPU values were measured over three seeds
to take about two minutes for the whole sweep on 2 cores; the GPU values are classroom
scale). ``Overfitting.arms`` are the CPU ones; ``lab.config`` picks the preset's.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import mean
from typing import Any

from ..config import RunConfig
from ..evaluate.result import EvalResult
from ..evaluate.task import answer_rows, score_answer
from .base import Lab, rows_html

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
ARMS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "small": {"size": 12},
        "early_stop": {"size": 12, "patience": 2},
        "more_data": {"size": 96},
    },
    "gpu": {
        "small": {"size": 64},
        "early_stop": {"size": 64, "patience": 3},
        "more_data": {"size": 3200},
    },
}
BASES: dict[str, dict[str, Any]] = {
    "cpu": {"steps": 18, "batch_size": 4, "lr": 3e-3, "eval_every": 2, "data.val_size": 8,
            "data.max_length": 96},
    "gpu": {"steps": 200, "batch_size": 16, "lr": 1e-3, "eval_every": 10,
            "data.val_size": 100, "data.max_length": 128},
}
PROBES: dict[str, MemorisationProbe] = {
    "cpu": MemorisationProbe(train_rows=12, heldout_rows=16),
    "gpu": MemorisationProbe(train_rows=64, heldout_rows=128),
}

# The check's margins (see ``Overfitting.conditions``), set from three seeds measured on the
# CPU preset (seed 0/1/2): the small run's minimum 0.48/0.51/0.58 (seed-to-seed sd 0.05),
# its end 1.13/1.11/1.73, the validation curve jittering by about 0.2 between evaluations.
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
             f"{NEAR_TOL:.0%}); with more data (same steps) the final train-validation gap is "
             "smaller; and the small-data model repeats its training answers verbatim far more "
             f"often (by {SEPARATION:.0%} or more of the questions) than it answers new "
             "questions right.")
    base = RunConfig(method="lora", preset="auto").replace(task="arithmetic",
                                                           **{"eval.samples": 0})
    arms = ARMS["cpu"]
    watch = {"memo": PROBES["cpu"]}
    knobs = {"size": (10, 2000), "steps": (4, 200), "lr": (1e-5, 1e-1), "patience": (0, 10),
             "eval_every": (1, 50)}
    metrics = {"memorisation (before and after)": ["memo.train_verbatim",
                                                   "memo.heldout_correct"]}

    def __init__(self, runs_dir=None, **changes: Any) -> None:
        super().__init__(runs_dir, **changes)
        self.preset = self.config_base.resolved().preset
        self.arms = ARMS[self.preset]
        self.watch = {"memo": PROBES[self.preset]}
        self.config_base = self.config_base.replace(
            **{k: v for k, v in BASES[self.preset].items() if k not in changes})

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
            "more data: smaller gap": m["more.gap"] < m["small.gap"],
            "memorises": (m["memo.train_verbatim"] - m["memo.heldout_correct"] >= SEPARATION
                          and m["memo.before"] < m["memo.train_verbatim"]),
        }


def end_train_loss(run, window: int | None = None) -> float:
    """Training loss at the end: the mean over the last evaluation interval's steps (one
    batch's loss is noisy; the interval is what the last validation loss is compared to)."""
    window = window or run.config.eval.every
    losses = [s["loss"] for s in run.steps][-window:]
    return float(mean(losses)) if losses else math.nan


# -- figures and tables -------------------------------------------------------------------
COLORS = {"small": ("#d62728", "rgba(214,39,40,0.15)"),
          "more_data": ("#1f77b4", "rgba(31,119,180,0.15)")}


def train_loss_at_evals(run) -> tuple[list[int], list[float]]:
    """Training loss at each evaluation: the mean over the steps since the previous
    evaluation (what the validation loss at that step is compared to). The first interval is
    left out: a step's loss is measured before its update, so it still holds the untrained
    model's loss and would sit above the validation loss measured after the updates."""
    xs, ys, prev = [], [], 0
    for step in sorted({e["step"] for e in run.evals if e["step"] > 0}):
        window = [s["loss"] for s in run.steps if prev < s["step"] <= step]
        if window and prev > 0:
            xs.append(step)
            ys.append(float(mean(window)))
        prev = step
    return xs, ys


def _val_curve(run) -> tuple[list[int], list[float]]:
    """Validation loss at each scheduled evaluation (not the re-measure of a restored model)."""
    seen: dict[int, float] = {}
    for e in run.evals:
        seen.setdefault(e["step"], e["val_loss"])
    xs = sorted(seen)
    return xs, [seen[x] for x in xs]


def overfitting_figure(result, seed: int = 0, arms: Sequence[str] = ("small", "more_data"),
                       early: str | None = "early_stop"):
    """Training and validation loss against step for the small and the larger dataset: the
    best validation point marked, the train-validation gap shaded, and where early stopping
    stopped (and which step's weights it returned)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for arm in arms:
        run = result.runs.get((arm, seed))
        if run is None:
            continue
        line, fill = COLORS.get(arm, ("#555555", "rgba(85,85,85,0.15)"))
        n = run.config.data.size
        label = f"{n} examples"
        vx, vy = _val_curve(run)
        tx, ty = train_loss_at_evals(run)
        val_at = dict(zip(vx, vy))
        gx = [x for x in tx if x in val_at]
        fig.add_trace(go.Scatter(x=gx, y=[ty[tx.index(x)] for x in gx], mode="lines",
                                 line={"width": 0}, showlegend=False, hoverinfo="skip",
                                 legendgroup=arm))
        fig.add_trace(go.Scatter(x=gx, y=[val_at[x] for x in gx], mode="lines",
                                 line={"width": 0}, fill="tonexty", fillcolor=fill,
                                 name=f"gap (validation - training), {label}",
                                 hoverinfo="skip", legendgroup=arm))
        fig.add_trace(go.Scatter(x=vx, y=vy, mode="lines+markers", line={"color": line},
                                 name=f"validation loss, {label}", legendgroup=arm))
        fig.add_trace(go.Scatter(x=tx, y=ty, mode="lines",
                                 name=f"training loss, {label} (mean since last evaluation)",
                                 line={"color": line, "dash": "dash"}, legendgroup=arm))
        best_step, best = run.final["best_step"], run.final["best_val_loss"]
        fig.add_trace(go.Scatter(x=[best_step], y=[best], mode="markers",
                                 marker={"symbol": "star", "size": 15, "color": line,
                                         "line": {"color": "black", "width": 1}},
                                 name=f"lowest validation loss, {label} (step {best_step})",
                                 legendgroup=arm))
    stopped = result.runs.get((early, seed)) if early else None
    if stopped is not None and stopped.status == "early_stopped":
        f = stopped.final
        fig.add_vline(x=f["steps"], line={"color": "#2ca02c", "dash": "dot"},
                      annotation_text=f"early stopping ended here (step {f['steps']})",
                      annotation_position="top left")
        fig.add_trace(go.Scatter(
            x=[f["best_step"]], y=[f["final_val_loss"]], mode="markers",
            marker={"symbol": "circle-open", "size": 18, "color": "#2ca02c",
                    "line": {"width": 3}},
            name=f"early stopping's returned model: step {f['best_step']}'s weights"))
    fig.update_layout(
        title=f"Few examples: validation loss turns up while training loss falls (seed {seed})",
        xaxis_title="optimizer step",
        yaxis_title="loss on the answer tokens (cross-entropy, nats)",
        template="plotly_white", height=480, width=940,
        legend={"orientation": "v", "x": 1.02, "y": 1, "font": {"size": 11},
                "traceorder": "normal"},
        margin={"l": 70, "r": 20, "t": 60, "b": 60})
    return fig


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


def memorisation_html(result) -> str:
    """``memorisation_rows`` as an HTML table (shares as percentages)."""
    rows = memorisation_rows(result)
    if not rows:
        return "<p>No runs.</p>"

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.0%}"
        return "" if v is None else html.escape(str(v))

    return rows_html(rows, cell)


def arms_html(lab: Lab) -> str:
    """The lab's arms as resolved on this machine: examples, steps, epochs, patience."""
    head = ["arm", "training examples", "steps", "batch", "epochs (passes over the data)",
            "evaluate every", "validation rows", "learning rate", "patience"]
    body = []
    for arm in lab.arms:
        c = lab.config(arm).resolved()
        epochs = c.train.max_steps * c.train.batch_size / c.data.size
        cells = [arm, c.data.size, c.train.max_steps, c.train.batch_size, f"{epochs:.1f}",
                 c.eval.every, c.data.val_size, f"{c.train.learning_rate:g}",
                 c.eval.early_stopping_patience or "off"]
        body.append("<tr>" + "".join(f"<td style='text-align:right'>{html.escape(str(v))}</td>"
                                     for v in cells) + "</tr>")
    preset = lab.config_base.resolved().preset
    return (f"<p>Preset <b>{html.escape(preset)}</b> ({html.escape(lab.config_base.model)}, "
            f"{html.escape(lab.config_base.method.name)}, task "
            f"<code>{html.escape(lab.config_base.data.task)}</code>)</p><table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{''.join(body)}</tbody></table>")


def probe_examples_html(run, n: int = 3) -> str:
    """A few of the probe's questions, training and held-out, with the trained model's
    answers beside the reference (needs the live model: a run loaded from the run cache has
    none; ``lab.run(arm, refresh=True)`` trains it again)."""
    if run.model is None or run.splits is None:
        return ("<p><i>This run was loaded from the run cache, so its model is not in memory: "
                "<code>lab.run('small', refresh=True)</code> trains it again.</i></p>")
    task = run.config.data.task
    groups = [("training", list(run.splits.train[:n])), ("held-out", list(run.splits.test[:n]))]
    rows = [r for _, g in groups for r in g]
    answers = answer_rows(run.model, run.tokenizer, rows, task, batch_size=len(rows),
                          progress=False)
    out, i = [], 0
    for kind, group in groups:
        for r in group:
            text, ref = answers[i].text, r["messages"][-1]["content"]
            i += 1
            right = mean(score_answer(task, text, r["meta"]).values()) == 1
            mark = ("verbatim" if verbatim(text, ref) else "correct" if right else "wrong")
            color = {"verbatim": "#9a6700", "correct": "#1a7f37", "wrong": "#b00020"}[mark]
            out.append(f"<tr><td>{kind}</td><td>{html.escape(r['messages'][-2]['content'])}"
                       f"</td><td>{html.escape(ref)}</td><td>{html.escape(text)}</td>"
                       f"<td style='color:{color}'><b>{mark}</b></td></tr>")
    return ("<table><thead><tr><th>rows</th><th>question</th><th>reference answer</th>"
            "<th>trained model's answer</th><th></th></tr></thead><tbody>"
            + "".join(out) + "</tbody></table>")
