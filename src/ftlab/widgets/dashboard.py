"""Live dashboard: train and validation loss against step, plus panels a lab adds.

A ``Dashboard`` is an event listener (``dashboard.on_event``): it knows nothing about the
trainer, only the events a run emits, so the same object plots a live run, a finished
``TrainResult`` or a run folder read back from disk (``dashboard.show(run)``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .figures import Throttle, legend_of, new_figure, step_ticks, sync_state
from .labels import is_share, metric_label

Points = dict[str, tuple[list[float], list[float]]]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def as_dict(event: Any) -> dict:
    """Events arrive as objects (live) or dicts (run files); treat both alike."""
    return event.to_dict() if hasattr(event, "to_dict") else dict(event)


class Dashboard:
    """Loss curves (and lab metrics) that grow while a run goes.

    ``metrics`` names numbers to plot: a list (one panel per metric) or
    ``{"panel title": ["metric", ...]}`` (several metrics share a panel, e.g. proxy and
    gold reward). A name is looked up in ``EvalLogged.metrics`` (evaluators) and in
    ``StepLogged.metrics`` (per-step numbers: an RL run's ``rl.proxy``, ``rl.gold``, …).
    A policy run has no validation loss (NaN) and its training loss is GRPO's, which means
    nothing to a learner: ``losses=False`` leaves the loss panel out.
    Legends and axes use the names a learner reads (``ftlab.widgets.labels``).
    """

    def __init__(self, metrics: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
                 title: str = "loss", throttle_s: float = 0.25, *,
                 losses: bool = True) -> None:
        if isinstance(metrics, Mapping):
            panels = {t: list(names) for t, names in metrics.items()}
        else:
            panels = {metric_label(m): [m] for m in (metrics or [])}
        self.panels = panels
        self.title = title
        rows = ({title: ["train loss", "val loss"]} if losses else {}) | panels
        self.figure = new_figure(rows=max(1, len(rows)), titles=list(rows),
                                 y_titles=[_y_title(t) for t in rows])
        self._lock = threading.Lock()
        self._throttle = Throttle(throttle_s)
        self._data: Points = {}
        self._trace_index: dict[str, int] = {}
        self._early_point: int | None = None  # the step of a val loss plotted before its eval
        if losses:
            self._add_trace("train loss", row=1, mode="lines", color="#1f77b4")
            self._add_trace("best", row=1, mode="markers", color="#2ca02c",
                            marker={"symbol": "star-open", "size": 17,
                                    "line": {"width": 2, "color": "#2ca02c"}})
            self._add_trace("val loss", row=1, mode="lines+markers", color="#d62728")
        for i, names in enumerate(panels.values(), start=1 + losses):
            for name in names:
                self._add_trace(name, row=i, mode="lines+markers")
            if all(is_share(n) for n in names):
                self.figure.update_yaxes(range=[-0.03, 1.03], row=i, col=1)
        sync_state(self.figure)

    @property
    def labels(self) -> dict[str, str]:
        """``{metric: the name its legend entry shows}`` for every line of the figure."""
        return {name: self.figure.data[i].name for name, i in self._trace_index.items()}

    # -- building -------------------------------------------------------------------
    def _add_trace(self, name: str, row: int, mode: str, color: str | None = None,
                   marker: dict | None = None) -> None:
        import plotly.graph_objects as go

        self.figure.add_trace(
            go.Scatter(x=[], y=[], name=metric_label(name), mode=mode, legend=legend_of(row),
                       line={"color": color} if color else None,
                       marker=marker or ({"color": color} if color else None)),
            row=row, col=1)
        self._trace_index[name] = len(self.figure.data) - 1
        self._data[name] = ([], [])

    # -- listening --------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        """Listener for ``train(on_event=...)``: called on the training thread."""
        e = as_dict(event)
        kind = e.get("kind")
        if kind == "start":
            self.reset()
            with self.figure.batch_update():
                self.figure.update_xaxes(**step_ticks(e.get("total_steps") or 1))
            sync_state(self.figure)
            return
        with self._lock:
            if kind == "step" and "train loss" in self._data:
                self._append("train loss", e["step"], e["loss"])
            elif kind in ("val_loss", "eval") and _finite(e.get("val_loss")) \
                    and "val loss" in self._data:
                if kind == "eval" and self._early_point == e["step"]:
                    self._data["val loss"][1][-1] = e["val_loss"]  # the same point, plotted
                else:  # early by its ValLossMeasured
                    self._append("val loss", e["step"], e["val_loss"])
                self._early_point = e["step"] if kind == "val_loss" else None
                if kind == "eval":
                    self._data["best"] = ([e["best_step"]], [e["best_val_loss"]])
            if kind in ("step", "eval"):
                for name, value in (e.get("metrics") or {}).items():
                    if name in self._data and _finite(value):
                        self._append(name, e["step"], float(value))
        if kind in ("val_loss", "eval", "end") or self._throttle.ready():
            self.flush(sync=kind in ("val_loss", "eval", "end"))

    def _append(self, name: str, x: float, y: float) -> None:
        xs, ys = self._data[name]
        xs.append(x)
        ys.append(y)

    def flush(self, sync: bool = True) -> None:
        """Push buffered points to the figure in one batch (and to the synced state)."""
        with self._lock:
            snapshot = {k: (list(xs), list(ys)) for k, (xs, ys) in self._data.items()}
        with self.figure.batch_update():
            for name, (xs, ys) in snapshot.items():
                trace = self.figure.data[self._trace_index[name]]
                if len(trace.x or ()) != len(xs) or name == "best":
                    trace.x, trace.y = xs, ys
        if sync:
            sync_state(self.figure)

    def reset(self) -> None:
        """Clear every curve (a new run starts)."""
        with self._lock:
            self._early_point = None
            for name in self._data:
                self._data[name] = ([], [])
        self.flush()

    def show(self, run: Any) -> Dashboard:
        """Plot a finished ``Run`` (live from ``train()`` or read back from its folder)."""
        self.reset()
        for record in [*run.steps, *run.evals]:
            self.on_event(record)
        self.flush()
        return self

    # -- reading back (tests, checks in notebooks) ------------------------------------
    @property
    def points(self) -> Points:
        """What the figure holds now: ``{trace name: (steps, values)}``."""
        return {name: (list(self.figure.data[i].x or ()), list(self.figure.data[i].y or ()))
                for name, i in self._trace_index.items()}

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.figure._repr_mimebundle_(**kwargs)


def _y_title(panel: str) -> str:
    """A panel title without its parenthesis, as its y-axis title ("completion length")."""
    return panel.split(" (")[0]
