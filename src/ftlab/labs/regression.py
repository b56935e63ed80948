"""Lab 5: capability regression. What a narrow fine-tune costs elsewhere, read two ways.

The claim to test (Biderman et al., 2024, *LoRA Learns Less and Forgets Less*): narrow
fine-tuning degrades what the model could do outside the task, full fine-tuning more than
LoRA; replaying general data during training guards against it. The lesson underneath
is about instruments: the broad benchmark *scored by log-likelihood* (which choice the
model finds likeliest) can stay level or even rise after a fine-tune that left the model
unable to *answer* anything but "positive". Knowledge still inside, behaviour lost. So the
same benchmark items are also asked for a generated answer, and the other tasks are scored
by generation (``ftlab.evaluate.behaviour``).

The runs are Lab 3's (``ftlab.labs.collapse``: same arms, sizes and evaluators, so the run
cache trains each once), plus ``lora_r2`` (a smaller LoRA rank) and ``extreme`` (full
fine-tuning at five times the aggressive rate, looking for a setting where even the
log-likelihood view falls: at this budget there is none, it fell 0.10 inside its interval
while the target was no longer learned). The check reads ``aggressive`` and ``gentle`` over
three seeds; the others are measured on the first (``sweep(seeds=(0,), arms=...)``).
"""

from __future__ import annotations

import math
from typing import Any

from ..evaluate.behaviour import item_values, paired_diff, run_paired
from ..evaluate.result import wilson_interval
from ..runs import Run
from .base import LabResult
from .collapse import ARMS, LEARNED, NarrowFinetune

ELSEWHERE = ("other.item/", "bench.gen_item/")  # generated answers outside the task


def elsewhere_paired(run: Run) -> tuple[float, float, float]:
    """Change in generated-answer score outside the task (other tasks' rows and benchmark
    items pooled, each item once), with the 95% interval of the paired difference."""
    before, after = {}, {}
    for prefix in ELSEWHERE:
        b, a = item_values(run, prefix, "first"), item_values(run, prefix)
        before.update({prefix + k: v for k, v in b.items()})
        after.update({prefix + k: v for k, v in a.items()})
    ids = sorted(set(before) & set(after))
    return paired_diff([before[i] for i in ids], [after[i] for i in ids])


def regression_numbers(run: Run, arm: str) -> dict[str, float]:
    """One run's numbers: the target gained, the rest lost (generated) and the LL view."""
    m: dict[str, float] = {
        f"{arm}.task_before": run.metric("task.score", "first"),
        f"{arm}.task": run.metric("task.score"),
        f"{arm}.val_drop": run.final["first_val_loss"] - run.final["final_val_loss"]}
    for name, prefix in (("other", "other.item/"), ("gen", "bench.gen_item/"),
                         ("ll", "bench.ll_item/")):
        d, lo, hi = run_paired(run, prefix)
        m.update({f"{arm}.{name}_change": d, f"{arm}.{name}_ci_low": lo,
                  f"{arm}.{name}_ci_high": hi})
    d, lo, hi = elsewhere_paired(run)
    m.update({f"{arm}.elsewhere_change": d, f"{arm}.elsewhere_ci_low": lo,
              f"{arm}.elsewhere_ci_high": hi})
    return m


class Regression(NarrowFinetune):
    """A narrow fine-tune loses generated answers elsewhere; a gentler one loses less; the
    log-likelihood view does not see it."""

    title = "Lab 5 · Capability regression"
    arms = {**ARMS, "lora_r2": {"method": "lora", "lr": 1e-3, "r": 2},
            "extreme": {"method": "full", "lr": 1e-3}}
    claim = ("After the aggressive fine-tune the target task is learned (score >= "
             f"{LEARNED:.0%}) and the generated-answer score elsewhere (the other tasks' rows "
             "and the benchmark items asked in words, pooled) falls: the 95% interval of the "
             "paired difference lies below zero. With a gentler schedule the target is still "
             "learned and less is lost. The log-likelihood view of the same benchmark items "
             "does not fall beyond its own interval after the aggressive fine-tune.")
    metrics = {"probe pass rate (live subset)": ["probes.live"]}

    arm_numbers = staticmethod(regression_numbers)

    def conditions(self, m: dict[str, float]) -> dict[str, bool]:
        return {
            "aggressive: target learned": m["aggressive.task"] >= LEARNED,
            "gentle: target learned": m["gentle.task"] >= LEARNED,
            "aggressive: loses elsewhere beyond noise": m["aggressive.elsewhere_ci_high"] < 0,
            "gentle: loses less": (m["gentle.elsewhere_change"]
                                   > m["aggressive.elsewhere_change"]),
            "log-likelihood: no fall beyond noise": m["aggressive.ll_ci_high"] >= 0,
        }


# -- what a notebook shows ------------------------------------------------------------------
def _bar_ci(values: list[float], ns: list[int]) -> dict:
    lo_hi = [wilson_interval(v * n, n) for v, n in zip(values, ns)]
    return {"type": "data", "symmetric": False,
            "array": [hi - v for v, (_, hi) in zip(values, lo_hi)],
            "arrayminus": [v - lo for v, (lo, _) in zip(values, lo_hi)]}


def views_chart(run: Run, title: str | None = None):
    """The benchmark per area, before and after, by log-likelihood and by generated answer
    (bars with 95% intervals)."""
    from plotly.subplots import make_subplots

    areas = sorted({k.split("/", 1)[1] for k in run.evals[0]["metrics"]
                    if k.startswith("bench.ll/")})
    n_item = len(item_values(run, "bench.ll_item/"))
    per_area = n_item // max(1, len(areas))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=(
        "log-likelihood (which choice is likeliest)", "generated answer (what it says)"))
    for col, view in ((1, "ll"), (2, "gen")):
        for at, color in (("first", "#8aa4c8"), ("final", "#c0392b")):
            ys = [run.metric(f"bench.{view}/{a}", at) for a in areas]
            ys.append(run.metric(f"bench.{view}", at))
            fig.add_bar(x=[*areas, "all"], y=ys, name="before" if at == "first" else "after",
                        marker_color=color, showlegend=col == 1, legendgroup=at,
                        error_y=_bar_ci(ys, [per_area] * len(areas) + [n_item]),
                        row=1, col=col)
    chance = run.metric("bench.chance")
    fig.add_hline(y=chance, line_dash="dot", annotation_text="chance", row=1, col="all")
    fig.update_layout(title=title or f"The same {n_item} benchmark items, read two ways",
                      barmode="group", template="plotly_white", height=400, width=900,
                      legend={"title": "model"})
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], row=1, col=1)
    fig.update_xaxes(title_text="area")
    return fig


def gains_chart(run: Run, title: str | None = None):
    """Before and after on one figure: the target task, the other tasks (generated) and the
    benchmark (generated, and log-likelihood)."""
    import plotly.graph_objects as go

    task = run.config.data.task
    others = sorted(k.split(".", 1)[1] for k in run.evals[0]["metrics"]
                    if k.startswith("other.") and "/" not in k and k != "other.score")
    names = [(f"{task} (target)", "task.score"),
             *[(f"{t} (generated)", f"other.{t}") for t in others],
             ("benchmark (generated)", "bench.gen"), ("benchmark (log-likelihood)", "bench.ll")]
    fig = go.Figure()
    for at, label, color in (("first", "before", "#8aa4c8"), ("final", "after", "#c0392b")):
        fig.add_bar(x=[n for n, _ in names], y=[run.metric(k, at) for _, k in names],
                    name=label, marker_color=color)
    fig.update_layout(title=title or "What the narrow fine-tune gained and what it lost",
                      barmode="group", template="plotly_white", height=380, width=820,
                      yaxis={"title": "score", "range": [0, 1.05]},
                      xaxis={"title": "measured on"}, legend={"title": "model"})
    return fig


def tradeoff_chart(result: LabResult, title: str | None = None):
    """Learning against forgetting, one point per run (Biderman et al., 2024, Fig. 1):
    the target task's validation-loss drop against the generated score lost elsewhere."""
    import plotly.graph_objects as go

    fig = go.Figure()
    by_arm: dict[str, list[tuple[float, float, int]]] = {}
    for (arm, seed), run in sorted(result.runs.items()):
        m = regression_numbers(run, arm)
        by_arm.setdefault(arm, []).append((-m[f"{arm}.elsewhere_change"],
                                           m[f"{arm}.val_drop"], seed))
    for arm, pts in by_arm.items():
        cfg = result.runs[(arm, pts[0][2])].config
        label = (f"{arm}: {cfg.method.name}"
                 + (f" r={cfg.method.r}" if cfg.method.name == "lora" else "")
                 + f", lr {cfg.train.learning_rate:g}"
                 + (f", mix {cfg.data.mix_share:g}" if cfg.data.mix_share else ""))
        fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                        name=label, marker={"size": 11},
                        text=[f"seed {p[2]}" for p in pts])
    fig.update_layout(title=title or "Learning against forgetting, one point per run",
                      template="plotly_white", height=420, width=820,
                      xaxis={"title": "forgetting: generated score lost elsewhere "
                             "(share of items)"},
                      yaxis={"title": "learning: target validation-loss drop (nats)"},
                      legend={"title": "run"})
    return fig


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


def bench_side_by_side(run: Run, n: int = 6) -> Any:
    """A few benchmark items: the choice the model found likeliest and the answer it wrote,
    before training and after (HTML)."""
    import html

    from IPython.display import HTML

    from ..evaluate.behaviour import saved_answers

    before, after = saved_answers(run, "bench", "first"), saved_answers(run, "bench")
    if before is None or after is None:
        return HTML("<p>The answers of this run were not kept on this machine "
                    "(they live in ftlab's cache); train it again with refresh=True.</p>")
    by_area: dict[str, list[int]] = {}
    for i, b in enumerate(before):
        by_area.setdefault(b["area"], []).append(i)
    # round robin over the areas: the first item of each, then the second ...
    order = [i for k in range(len(before)) for ids in by_area.values() if k < len(ids)
             for i in ids[k:k + 1]]
    picked_rows = [(before[i], after[i]) for i in order[:n]]

    def mark(ok: bool) -> str:
        return f"<b style='color:{'#1a7f37' if ok else '#b00020'}'>{'✓' if ok else '✗'}</b>"

    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left;vertical-align:top'>{c}</td>" for c in (
            html.escape(b["question"]), html.escape(b["expected"]),
            f"{html.escape(b['ll_pick'])} {mark(b['ll_correct'])}",
            f"{html.escape(a['ll_pick'])} {mark(a['ll_correct'])}",
            f"{html.escape(b['answer'])} {mark(b['gen_correct'])}",
            f"{html.escape(a['answer'])} {mark(a['gen_correct'])}")) + "</tr>"
        for b, a in picked_rows)
    head = "".join(f"<th style='text-align:left'>{h}</th>" for h in (
        "question", "right choice", "likeliest before", "likeliest after", "answer before",
        "answer after"))
    return HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def shortest_pick_share(run: Run, at: str = "final") -> float | None:
    """Share of benchmark items where the log-likelihood pick is the shortest choice (in
    characters; ties count): the habit a one-word fine-tune rewards."""
    from ..evaluate.behaviour import saved_answers

    rows = saved_answers(run, "bench", at)
    if not rows:
        return None
    return sum(len(r["ll_pick"]) == min(map(len, r["choices"])) for r in rows) / len(rows)
