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

from ..runs import Run, compare, list_runs, load_run, runs_root
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


def _key(path: str | Path) -> str:
    """How the view names a run: its folder's full path (two folders may share a name)."""
    return str(Path(path).resolve())


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
        """Re-read the run folders, keeping the current selection (runs still on disk)."""
        runs = {_key(r.path): r for r in list_runs(self.runs_dir)}
        for key in self.picker.value:  # picked from elsewhere (select): kept while they exist
            if key not in runs and key in self._runs and self._runs[key].path.is_dir():
                runs[key] = self._runs[key]
        self._runs = runs
        keep = [k for k in self.picker.value if k in self._runs]
        self._set_options()
        self.picker.value = tuple(keep)
        self.draw()

    def select(self, runs: Iterable[Any]) -> CompareView:
        """Select runs by name, path or ``Run`` (live from ``train()`` or read back)."""
        keys = [self._add(r) for r in runs]
        self._set_options()
        self.picker.value = tuple(keys)  # triggers draw()
        self.draw()
        return self

    def _add(self, r: Any) -> str:
        """The key of one run (its folder's path), read from its folder if not known yet.

        Runs are keyed by path, not by folder name: two students' runs may share a name."""
        if isinstance(r, Run):
            self._runs.setdefault(_key(r.path), r)
            return _key(r.path)
        if len(Path(r).parts) == 1:  # a bare run name: the runs folder's, else a known run
            mine = runs_root(self.runs_dir) / r
            named = [k for k, run in self._runs.items() if run.name == str(r)]
            if named and not mine.is_dir():
                return named[-1]
            r = mine if mine.is_dir() else r
        if _key(r) in self._runs:
            return _key(r)
        run = load_run(Path(r))
        self._runs.setdefault(_key(run.path), run)
        return _key(run.path)

    def label(self, run: Run) -> str:
        """The run's folder name, with its parent folder's when runs come from several."""
        if len({_key(r.path.parent) for r in self._runs.values()}) > 1:
            return f"{run.path.parent.name}/{run.name}"
        return run.name

    def _set_options(self) -> None:
        self.picker.options = [(f"{self.label(r)}  [{r.status}]", k)
                               for k, r in self._runs.items()]

    @property
    def selected(self) -> list[Run]:
        return [self._runs[n] for n in self.picker.value if n in self._runs]

    @property
    def rows(self) -> list[dict]:
        """One summary row per selected run (``ftlab.runs.compare``)."""
        runs = self.selected
        return [dict(row, run=self.label(run)) for run, row in zip(runs, compare(runs))]

    def draw(self) -> None:
        import plotly.graph_objects as go

        traces = []
        for i, run in enumerate(self.selected):
            color = COLORS[i % len(COLORS)]
            prefix = f"{run.path.parent.name}/" if self.label(run) != run.name else ""
            label = f"{run.config.method.name} · {prefix}{run.name[-12:]}"
            group = _key(run.path)
            traces.append(go.Scatter(x=[e["step"] for e in run.evals],
                                     y=[e["val_loss"] for e in run.evals], name=label,
                                     mode="lines+markers", line={"color": color},
                                     legendgroup=group))
            traces.append(go.Scatter(x=[s["step"] for s in run.steps],
                                     y=[s["loss"] for s in run.steps], name=label + " train",
                                     mode="lines", showlegend=False, legendgroup=group,
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
