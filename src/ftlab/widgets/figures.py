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


def new_figure(rows: int = 1, titles: list[str] | None = None,
               height: int = 320) -> go.FigureWidget:
    """An empty FigureWidget with ``rows`` stacked panels sharing the step axis."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.12 / rows,
                        subplot_titles=titles)
    fig.update_layout(height=height + 200 * (rows - 1), width=760, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.15 if rows == 1 else -0.06})
    fig.update_xaxes(title_text="step", row=rows, col=1)
    return go.FigureWidget(fig)


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
