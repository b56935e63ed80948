"""Lab 1's figures and tables (``ftlab.labs.overfitting``): the loss curves with the gap
and the early stop marked, the memorisation probe's numbers and examples, the arms."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from statistics import mean
from typing import Any

from ..evaluate.task import answer_rows, score_answer
from .base import Html, Lab, rows_html
from .overfitting import memorisation_rows, verbatim

# -- figures ------------------------------------------------------------------------------
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



# -- tables -------------------------------------------------------------------------------
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
    rows = []
    for arm in lab.arms:
        c = lab.config(arm).resolved()
        epochs = c.train.max_steps * c.train.batch_size / c.data.size
        rows.append({"arm": arm, "training examples": c.data.size, "steps": c.train.max_steps,
                     "batch": c.train.batch_size, "epochs (passes over the data)":
                     f"{epochs:.1f}", "evaluate every": c.eval.every,
                     "validation rows": c.data.val_size,
                     "learning rate": f"{c.train.learning_rate:g}",
                     "patience": c.eval.early_stopping_patience or "off"})
    base = lab.config_base
    return (f"<p>Preset <b>{html.escape(lab.preset)}</b> ({html.escape(base.model)}, "
            f"{html.escape(base.method.name)}, task "
            f"<code>{html.escape(base.data.task)}</code>)</p>" + rows_html(rows))


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
            out.append({"rows": kind, "question": r["messages"][-2]["content"],
                        "reference answer": ref, "trained model's answer": text,
                        "": Html(f"<b style='color:{color}'>{mark}</b>")})
    style = {c: "text-align:left" for c in ("rows", "question", "reference answer",
                                            "trained model's answer")}
    return rows_html(out, style=style)
