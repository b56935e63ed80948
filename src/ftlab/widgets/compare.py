"""Compare view: earlier runs' curves overlaid, and a table of their final figures.

Runs are read from run folders (``ftlab.runs``), so a comparison survives a kernel restart:
train LoRA today, prefix tuning tomorrow, and put the two side by side.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..runs import Run, compare, list_runs, load_run
from .figures import new_figure, sync_state

COLUMNS = ("run", "method", "status", "steps", "train_loss", "val_loss", "best_val_loss",
           "trainable_params", "wall_s")
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
          "#17becf")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value:,}"
    return "" if value is None else str(value)


def table_html(rows: list[dict], columns: Iterable[str] = COLUMNS) -> str:
    """The summary rows of ``ftlab.runs.compare`` as an HTML table."""
    columns = list(columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return ("<style>.ftlab-compare td,.ftlab-compare th{padding:3px 8px;text-align:right;"
            "border-bottom:1px solid #ddd;font-size:12px}</style>"
            f"<table class='ftlab-compare'><tr>{head}</tr>{body}</table>")


class CompareView:
    """Pick runs from the run folders; see their loss curves overlaid and a summary table."""

    def __init__(self, runs_dir: str | Path | None = None) -> None:
        self.runs_dir = runs_dir
        self._runs: dict[str, Run] = {}
        self.picker = w.SelectMultiple(options=[], rows=6, description="runs",
                                       tooltip="Pick runs to compare (ctrl/shift-click).",
                                       layout=w.Layout(width="760px"))
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="Read the run folders again.")
        self.figure = new_figure(rows=1, titles=["validation loss (solid), train loss (dotted)"])
        self.table = w.HTML()
        self.picker.observe(lambda _change: self.draw(), names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.widget = w.VBox([w.HBox([self.picker, self.refresh_button]), self.figure,
                              self.table])
        self.refresh()

    def refresh(self) -> None:
        """Re-read the run folders, keeping the current selection."""
        self._runs = {r.name: r for r in list_runs(self.runs_dir)}
        keep = [n for n in self.picker.value if n in self._runs]
        self.picker.options = [(f"{r.name}  [{r.status}]", r.name) for r in self._runs.values()]
        self.picker.value = tuple(keep)
        self.draw()

    def select(self, runs: Iterable[Any]) -> CompareView:
        """Select runs by name, path or ``Run`` (live from ``train()`` or read back)."""
        names = []
        for r in runs:
            if isinstance(r, Run):
                name = r.name
                self._runs.setdefault(name, r)
            else:
                p = Path(r)
                name = p.name
                if name not in self._runs:
                    self._runs[name] = load_run(p)
            names.append(name)
        self.picker.options = [(f"{r.name}  [{r.status}]", r.name) for r in self._runs.values()]
        self.picker.value = tuple(names)  # triggers draw()
        self.draw()
        return self

    @property
    def selected(self) -> list[Run]:
        return [self._runs[n] for n in self.picker.value if n in self._runs]

    @property
    def rows(self) -> list[dict]:
        """One summary row per selected run (``ftlab.runs.compare``)."""
        return compare(self.selected)

    def draw(self) -> None:
        import plotly.graph_objects as go

        traces = []
        for i, run in enumerate(self.selected):
            color = COLORS[i % len(COLORS)]
            label = f"{run.config.method.name} · {run.name[-12:]}"
            traces.append(go.Scatter(x=[e["step"] for e in run.evals],
                                     y=[e["val_loss"] for e in run.evals], name=label,
                                     mode="lines+markers", line={"color": color},
                                     legendgroup=run.name))
            traces.append(go.Scatter(x=[s["step"] for s in run.steps],
                                     y=[s["loss"] for s in run.steps], name=label + " train",
                                     mode="lines", showlegend=False, legendgroup=run.name,
                                     line={"color": color, "dash": "dot", "width": 1}))
        self.figure.data = ()
        if traces:
            self.figure.add_traces(traces)
        sync_state(self.figure)
        self.table.value = table_html(self.rows) if self.selected else (
            "<i>No runs selected. Runs are read from "
            f"{html.escape(str(self.runs_dir or 'FTLAB_RUNS or ./runs'))}.</i>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)
