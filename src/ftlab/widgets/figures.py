"""plotly FigureWidget helpers shared by the dashboard and the compare view.

Two things every live figure here needs:

- ``sync_state``: a FigureWidget sends Python-side changes as transient messages and sets
  its synced ``_widget_data``/``_widget_layout`` traits only when first displayed. A
  frontend that connects later (Voila, which runs the notebook before the page attaches;
  a re-opened notebook; nbconvert's saved widget state) would show the figure as it was
  then: empty. Copying the current data into those traits fixes it; the browser side
  ignores the change, so live views are unaffected. Private plotly API: plotly is pinned
  to major 7 and ``tests/test_widgets.py`` checks it.
- ``Throttle``: training emits an event per step; redrawing at most every few hundred
  milliseconds keeps the browser and the comm channel calm on a fast GPU.
"""

from __future__ import annotations

import copy
import time

import plotly.graph_objects as go

LEGEND_PX = 240  # right margin that holds each panel's legend, beside its lines


def new_figure(rows: int = 1, titles: list[str] | None = None, height: int = 320,
               y_titles: list[str] | None = None) -> go.FigureWidget:
    """An empty FigureWidget with ``rows`` stacked panels sharing the step axis.

    Every panel shows its step ticks and titles its axes, and has its own legend to its
    right (``legend``, ``legend2``, ...: a trace names it with ``legend=legend_of(row)``),
    so a line's name sits beside the line rather than below the last panel."""
    from plotly.subplots import make_subplots

    total = height + 230 * (rows - 1)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True,
                        vertical_spacing=min(0.3, 95 / total), subplot_titles=titles)
    fig.update_layout(height=total, width=760, template="plotly_white",
                      margin={"l": 70, "r": LEGEND_PX, "t": 40, "b": 50})
    for row in range(1, rows + 1):
        top = fig.get_subplot(row, 1).yaxis.domain[1]
        fig.update_layout({legend_of(row): {"x": 1.02, "xanchor": "left", "y": top,
                                            "yanchor": "top", "font": {"size": 11}}})
        fig.update_yaxes(title_text=(y_titles or [""] * rows)[row - 1], row=row, col=1)
    fig.update_xaxes(title_text="step", showticklabels=True, rangemode="tozero")
    return go.FigureWidget(fig)


def legend_of(row: int) -> str:
    """The layout key of a panel's own legend (plotly numbers them from the second)."""
    return "legend" if row == 1 else f"legend{row}"


def step_ticks(total: int) -> dict:
    """The step axis of a run of ``total`` steps: whole steps only (no 0.5, 1.5 early in a
    run) and the whole run in view from its start."""
    dtick = next(d for d in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)
                 if total / d <= 10) if total <= 100_000 else None
    return {"range": [0, max(total, 1)], "tick0": 0, "dtick": dtick, "autorange": False}


def sync_state(fig: go.FigureWidget) -> None:
    """Make the figure's synced state equal what Python holds (see module docstring)."""
    fig._widget_data = copy.deepcopy(fig._data)
    fig._widget_layout = copy.deepcopy(fig._layout_obj._props)


class Throttle:
    """``ready()`` is true at most once every ``interval`` seconds (always for interval 0)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._last = 0.0

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False
