"""Lab 5's figures and tables (``ftlab.labs.regression``): the benchmark read two ways, what
the fine-tune gained and lost, learning against forgetting, benchmark items side by side."""

from __future__ import annotations

import html
from typing import Any

from ..evaluate.behaviour import item_values, saved_answers
from ..evaluate.result import wilson_interval
from ..runs import Run
from .base import Html, LabResult, rows_html
from .regression import reading, regression_numbers


# -- figures --------------------------------------------------------------------------------
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


VIEWS = (("ll", "accuracy, summed log-likelihood"),
         ("lln", "accuracy, log-likelihood per character"),
         ("gen", "accuracy, generated answer"),
         ("short", "summed pick is the shortest choice"))


def views_change_chart(result: LabResult, seed: int = 0, title: str | None = None):
    """Each arm's change (after − before) on the benchmark items, read four ways, with the
    95% interval of the paired difference: the two log-likelihood readings, the generated
    answer, and how often the summed-log-likelihood pick is the shortest choice."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for arm, run in result.by_seed(seed).items():
        m = regression_numbers(run, arm)
        ys = [m[f"{arm}.{v}_change"] for v, _ in VIEWS]
        fig.add_bar(x=[label for _, label in VIEWS], y=ys, name=arm,
                    error_y={"type": "data", "symmetric": False,
                             "array": [m[f"{arm}.{v}_ci_high"] - y for (v, _), y in zip(VIEWS, ys)],
                             "arrayminus": [y - m[f"{arm}.{v}_ci_low"]
                                            for (v, _), y in zip(VIEWS, ys)]})
    fig.add_hline(y=0, line_color="#555")
    fig.update_layout(title=title or f"The same benchmark items, four readings (seed {seed})",
                      barmode="group", template="plotly_white", height=420, width=900,
                      yaxis={"title": "change, after − before (share of items)"},
                      xaxis={"title": "reading"}, legend={"title": "arm"})
    return fig


def readings_html(result: LabResult, seed: int = 0) -> Any:
    """Each reading of the benchmark items, per arm, in words (``regression.reading``): fell
    or rose only where the whole 95% interval says so, else the fall not ruled out (HTML)."""
    from IPython.display import HTML

    runs = result.by_seed(seed)
    numbers = {arm: regression_numbers(run, arm) for arm, run in runs.items()}
    rows = [{"reading": label, **{arm: reading(m[f"{arm}.{v}_change"], m[f"{arm}.{v}_ci_low"],
                                               m[f"{arm}.{v}_ci_high"])
                                  for arm, m in numbers.items()}}
            for v, label in VIEWS]
    any_run = next(iter(runs.values()))
    rows.append({"reading": "always the shortest choice (no model)",
                 **{arm: f"{any_run.metric('bench.shortest'):.2f} (chance "
                         f"{any_run.metric('bench.chance'):.2f})" for arm in numbers}})
    return HTML(rows_html(rows, style="text-align:left", head_style="text-align:left"))


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


# -- tables ---------------------------------------------------------------------------------
def bench_side_by_side(run: Run, n: int = 6) -> Any:
    """A few benchmark items: the choice the model found likeliest and the answer it wrote,
    before training and after (HTML)."""
    from IPython.display import HTML

    before, after = saved_answers(run, "bench", "first"), saved_answers(run, "bench")
    if before is None or after is None:
        return HTML("<p>This run's folder holds no answers (a folder written before "
                    "answers were kept in it); train it again with refresh=True.</p>")
    by_area: dict[str, list[int]] = {}
    for i, b in enumerate(before):
        by_area.setdefault(b["area"], []).append(i)
    # round robin over the areas: the first item of each, then the second ...
    order = [i for k in range(len(before)) for ids in by_area.values() if k < len(ids)
             for i in ids[k:k + 1]]

    def marked(text: str, ok: bool) -> Html:
        mark = f"<b style='color:{'#1a7f37' if ok else '#b00020'}'>{'✓' if ok else '✗'}</b>"
        return Html(f"{html.escape(text)} {mark}")

    rows = [{"question": b["question"], "right choice": b["expected"],
             "likeliest before": marked(b["ll_pick"], b["ll_correct"]),
             "likeliest after": marked(a["ll_pick"], a["ll_correct"]),
             "answer before": marked(b["answer"], b["gen_correct"]),
             "answer after": marked(a["answer"], a["gen_correct"])}
            for b, a in ((before[i], after[i]) for i in order[:n])]
    return HTML(rows_html(rows, style="text-align:left;vertical-align:top",
                          head_style="text-align:left"))
