"""Lab 3's figures and tables (``ftlab.labs.collapse``): probes answered before and after,
the pass rate per instruction type, and ``table`` (rows of numbers, also Lab 5's)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from ..data.probes import PROBE_TYPES
from ..evaluate.behaviour import saved_answers
from ..runs import Run
from .base import Html, rows_html

SHOWN_TYPES = ("all_caps", "bullet_count", "json_output", "min_words")


def side_by_side(run: Run, types: Sequence[str] = SHOWN_TYPES, *, width: int = 260) -> Any:
    """The same probes answered before training and by the returned model, as HTML."""
    from IPython.display import HTML

    before, after = saved_answers(run, "probes", "first"), saved_answers(run, "probes")
    if before is None or after is None:
        return HTML("<p>This run's folder holds no answers (a folder written before "
                    "answers were kept in it); train it again with refresh=True.</p>")
    after_head = (f"after ({run.config.method.name}, lr "
                  f"{run.config.train.learning_rate:g})")

    def answer(r: dict) -> Html:
        # word-break:normal undoes JupyterLab's output <pre> rule (break-all), which split
        # words anywhere ("mysteriou s"); a word longer than the column still wraps
        return Html(
            f"<pre style='white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;"
            f"width:{width}px'>{html.escape(r['answer'])}</pre>"
            f"<b style='color:{'#1a7f37' if r['passed'] else '#b00020'}'>"
            f"{'passes' if r['passed'] else 'fails'}</b>"
            + (f" · training form ({r['training_form']})" if r["training_form"] else ""))

    rows = []
    for t in types:
        b = next(r for r in before if r["type"] == t)
        a = next(r for r in after if r["id"] == b["id"])
        rows.append({"instruction": b["prompt"], "before training": answer(b),
                     after_head: answer(a)})
    return HTML(rows_html(rows, style="vertical-align:top;text-align:left",
                          head_style="text-align:left"))


def type_chart(runs: dict[str, Run], title: str = "Which instructions go first"):
    """Pass rate per instruction type: before training, and after each run (bars)."""
    import plotly.graph_objects as go

    first = next(iter(runs.values()))
    fig = go.Figure()
    names = [("before training", first, "first")] + [(arm, r, "final")
                                                      for arm, r in runs.items()]
    for name, run, at in names:
        ys = [run.metric(f"probes.type/{t}", at) for t in PROBE_TYPES]
        fig.add_bar(name=name, x=list(PROBE_TYPES), y=ys)
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=380,
                      width=820, yaxis={"title": "probe pass rate (format and content)",
                                        "range": [0, 1.05]},
                      xaxis={"title": "instruction type"}, legend={"title": "model"})
    return fig


def table(rows: Sequence[dict]) -> Any:
    """Rows of numbers as an HTML table (floats to 2 decimals, learning rates as given)."""
    from IPython.display import HTML

    if not rows:
        return HTML("<p>(no rows)</p>")

    def cell(v: Any) -> str:
        if isinstance(v, float) and not math.isnan(v):
            return f"{v:.2g}" if 0 < abs(v) < 1e-2 else f"{v:.2f}"
        return html.escape("" if v is None else str(v))

    return HTML(rows_html(rows, cell))
