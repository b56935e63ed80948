"""The control panel: knobs -> a ``RunConfig`` -> a run in a background thread -> events.

The panel never reaches into the trainer. Run builds a config from the widgets (the
config validates itself, so a bad value becomes a readable ``ConfigError`` in the panel),
then calls ``ftlab.engine.train`` on a background thread with the panel, the dashboard and
the samples view as event listeners. The notebook stays responsive; Stop sets the run's
stop flag, which the trainer honours after the current optimizer step.

``panel.run(**overrides)`` is the same path, blocking, returning the ``TrainResult``: what
a notebook calls so that it also executes headless (nbval, CI, Voila).
"""

from __future__ import annotations

import dataclasses
import html
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..config import PREF_BETA, RunConfig, preset_values
from ..engine import Evaluator, StopFlag, TrainResult, train
from ..errors import ConfigError, FtlabError
from ..knobs import unknown_knob
from ..methods import METHODS, method_config
from .controls import (
    APPLIES,
    Knob,
    config_value,
    guarded,
    knob_meta,
    knob_path,
    make_knob,
    not_applied,
)
from .dashboard import Dashboard, as_dict
from .labels import metric_label
from .samples import SamplesView

DEFAULT_KNOBS = ("lr", "steps", "size", "r", "num_virtual_tokens")

_STYLE = {"idle": "#555", "running": "#1f5fbf", "completed": "#1a7f37",
          "early_stopped": "#1a7f37", "stopped": "#9a6700", "failed": "#b00020"}


def readable(error: BaseException) -> str:
    """An exception as one line a learner can act on (ftlab errors are written that way)."""
    if isinstance(error, FtlabError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class ControlPanel:
    """Knobs, Run/Stop, a status line, a live dashboard and a before/after samples view.

    ``knobs`` are short names or dotted paths (``"lr"``, ``"r"``, ``"train.warmup_steps"``);
    a mapping gives a knob its slider range (``{"lr": (1e-4, 1e-1), "steps": None}``).
    Method knobs (``r``, ``num_virtual_tokens``) show only while the chosen method has them.
    ``metrics`` adds dashboard panels for numbers that ``evaluators`` report.
    ``reuse=True`` shows an identical earlier run from its folder instead of training (and
    says so); its "train again" box trains anyway.
    """

    def __init__(self, config: RunConfig | None = None,
                 knobs: Sequence[str] | Mapping[str, tuple[float, float] | None] = DEFAULT_KNOBS,
                 *, methods: Iterable[str] | None = None,
                 metrics: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
                 evaluators: dict[str, Evaluator] | None = None,
                 runs_dir: str | Path | None = None, samples: bool = True,
                 title: str = "Fine-tuning run",
                 listeners: Sequence[Callable[[Any], Any]] = (), reuse: bool = False) -> None:
        self.base = config or RunConfig()
        self.evaluators = evaluators
        self.reuse = reuse  # load an identical earlier run (replayed) instead of training
        self.runs_dir = runs_dir
        self.listeners = list(listeners)
        shown = self.base.resolved()  # fills preset sizes so every slider has a value
        self.preset = shown.preset
        self._shown = shown

        self.config: RunConfig | None = None
        self.result: TrainResult | None = None
        self.error: BaseException | None = None
        self.state = "idle"
        self.run_dir: str | None = None
        self._thread: threading.Thread | None = None
        self._here = False  # the run goes on the calling thread (``run``), not Run's
        self._stop = StopFlag()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._t0 = 0.0
        self._updating = False
        self._refused: str | None = None  # the knob whose refused value the message shows
        self._evals: list[dict] = []  # this run's evaluations so far (the status quotes them)
        self._steps: list[dict] = []  # ... and its steps (quoted when nothing is evaluated)
        self._started_at = 0.0  # when the run's start event came
        self._measure_s: float | None = None  # how long measuring the base model took
        self._ended = ""  # the end of the status line of the run that ended last

        names = list(methods or METHODS)
        if self.base.method.name not in names:
            names.insert(0, self.base.method.name)
        self.method = guarded(w.Dropdown)(options=names, value=self.base.method.name,
                                 description="method", style={"description_width": "140px"},
                                 tooltip="Which parameters are trained: " + "; ".join(
                                     f"{n}: {METHODS[n].summary}" for n in names),
                                 layout=w.Layout(width="360px"), disabled=len(names) == 1)
        ranges = knobs if isinstance(knobs, Mapping) else dict.fromkeys(knobs)
        self.knobs: dict[str, Knob] = {}
        for name, view in ranges.items():
            path = knob_path(name)
            meta = knob_meta(path, shown.method.name)
            self.knobs[name] = make_knob(path, meta, config_value(shown, path), view)
            self.knobs[name].report = self._report
        self.method.guard = self._guard_method
        self.method.observe(self._method_changed, names="value")

        self.run_button = w.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="Train with these settings (in the background).")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop",
                                    disabled=True,
                                    tooltip="End the run after the current step; it is saved "
                                    "as 'stopped'.")
        self.train_again = w.Checkbox(
            value=False, description="train again", indent=False,
            layout=w.Layout(width="110px", display=None if reuse else "none"),
            tooltip="Train even when a run with these settings is in the run cache (else it "
            "is loaded and replayed in a moment).")
        self.run_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        self.progress = w.IntProgress(value=0, min=0, max=shown.train.max_steps or 1,
                                      layout=w.Layout(width="200px"))
        self.status = w.HTML()
        self.elapsed = w.Label("")
        self.message = w.HTML(layout=w.Layout(display="none"))
        self.header = w.HTML()
        self.dashboard = Dashboard(metrics=metrics, losses=self.base.rl is None)
        self.samples = SamplesView(kept=shown.eval.samples) if samples else None

        for knob in self.knobs.values():
            if knob.path in (rule[0] for rule in APPLIES.values()):
                knob.widget.observe(lambda _c: self._refresh_visibility(), names="value")
        objective = self._knob("pref.loss")
        if objective is not None:
            objective.widget.observe(self._objective_changed, names="value")
        controls = [self.method, *[k.widget for k in self.knobs.values()]]
        grid = w.GridBox(controls, layout=w.Layout(
            grid_template_columns="repeat(2, 370px)", grid_gap="2px 10px"))
        parts: list[w.Widget] = [
            self.header, grid,
            w.HBox([self.run_button, self.stop_button, self.train_again, self.progress,
                    self.elapsed], layout=w.Layout(align_items="center")),
            self.status, self.message, self.dashboard.figure]
        if self.samples is not None:
            parts.append(self.samples.widget)
        self.widget = w.VBox(parts, layout=w.Layout(width="780px"))
        self._title = title
        self._refresh_visibility()
        self._set_status("idle", "Ready. Set the knobs and press <b>Run</b>.")

    # -- building the config ----------------------------------------------------------
    def __getitem__(self, name: str) -> w.Widget:
        """The input widget of a knob: ``panel["lr"].value = 3e-3``.

        A value set on it passes the knob's check as ``set`` does: a refused one (``-1``, or
        beyond what the knob allows) is a ``ConfigError``, also shown in the panel, and the
        widget keeps its value instead of clamping; an allowed one beyond the slider widens it.
        """
        if name != "method" and name not in self.knobs:
            raise ConfigError("panel[name]", name, "a knob of this panel: "
                              + ", ".join(["method", *self.knobs]),
                              "Show it with ControlPanel(knobs=[...]).")
        return self.method if name == "method" else self.knobs[name].widget

    def set(self, **values: Any) -> None:
        """Set knobs by name (``panel.set(method="prefix", lr=1e-2)``).

        Every value goes through the knob's own check (the one ``RunConfig`` uses) before any
        widget changes: a value the config would refuse is a ``ConfigError`` naming the knob,
        never clamped by a slider; a knob the panel does not show is a ``ConfigError``
        listing the ones it does.
        """
        given = "method" in values
        method = values.pop("method", None)
        if given:
            self._check_method(method)
        by_path = {k.path: k for k in self.knobs.values()}
        checked: list[tuple[Knob, Any]] = []
        for name, value in values.items():
            knob = self.knobs.get(name)
            if knob is None:
                try:
                    knob = by_path.get(knob_path(name))
                except ConfigError:
                    knob = None
            if knob is None:
                raise unknown_knob(name, value, ["method", *self.knobs], "this panel",
                                   "Show it with ControlPanel(knobs=[...]), or pass it to "
                                   "panel.run(...), which takes any knob.")
            knob.check(value)
            checked.append((knob, value))
        if given:
            self.method.value = method
        for knob, value in checked:
            knob.set(value)

    def build_config(self, **overrides: Any) -> RunConfig:
        """The ``RunConfig`` the widgets describe (plus overrides), validated.

        Raises ``ConfigError`` naming the bad field, its allowed range and a fix.
        """
        name = overrides.pop("method", None) or self.method.value
        if isinstance(name, str) or not hasattr(name, "name"):
            self._check_method(name)  # as ``set`` checks it: a name the panel offers
        if not isinstance(name, str):  # a method config object
            method, name = name, name.name
        else:
            own = {f.name for f in dataclasses.fields(METHODS[name])}
            method_knobs = {k.name: k.get() for k in self.knobs.values()
                            if k.is_method_knob and k.name in own}
            method = (dataclasses.replace(self.base.method, **method_knobs)
                      if name == self.base.method.name else method_config(name, **method_knobs))
        values = {k.path: k.get() for k in self.knobs.values() if not k.is_method_knob}
        lr = values.get("train.learning_rate")
        if lr is not None and name != self.method.value and abs(
                lr - METHODS[self.method.value].default_lr) < 1e-12:
            values["train.learning_rate"] = METHODS[name].default_lr  # as the dropdown does
        cfg = self.base.replace(method=method, **values)
        if overrides:
            cfg = cfg.replace(**overrides)
        cfg.resolved()  # validates; the unresolved config is what runs (preset stays "auto")
        return cfg

    def _show_config(self, cfg: RunConfig) -> None:
        """Make the widgets show ``cfg`` (after ``run(**overrides)``): the panel shows what ran."""
        self._updating = True
        try:
            if cfg.method.name in self.method.options:
                self.method.value = cfg.method.name
            shown = cfg.resolved()
            for k in self.knobs.values():
                value = config_value(shown, k.path)
                if value is not None or k.off_value != "unset":
                    k.set(value)
        finally:
            self._updating = False
            self._refresh_visibility()

    def _check_method(self, method: Any) -> None:
        options = list(self.method.options)
        if not isinstance(method, str) or method not in options:
            raise ConfigError("method", method, "one of this panel's methods: "
                              + ", ".join(map(repr, options)))

    def _guard_method(self, method: Any) -> Any:
        """``panel["method"].value = ...``: a method the panel lacks is refused, not a
        TraitError."""
        try:
            self._check_method(method)
        except ConfigError as e:
            error = not_applied(e, "method", self.method.value)
            self._report("method", str(error))
            raise error from None
        self._report("method", "")
        return method

    def _report(self, path: str, message: str) -> None:
        """A value set on a widget: show why it was refused; clear that once one is taken."""
        if message:
            self._show_message(message, refused=path)
        elif self._refused == path:
            self._show_message("")

    def _method_changed(self, change: dict) -> None:
        old, new = METHODS[change["old"]], METHODS[change["new"]]
        lr = next((k for k in self.knobs.values() if k.path == "train.learning_rate"), None)
        if lr is not None and not self._updating and abs(lr.get() - old.default_lr) < 1e-12:
            lr.set(new.default_lr)  # the lr was the method's default: take the new one's
        self._refresh_visibility()

    def _knob(self, path: str) -> Knob | None:
        return next((k for k in self.knobs.values() if k.path == path), None)

    def _objective_changed(self, change: dict) -> None:
        beta = self._knob("pref.beta")
        if beta is not None and not self._updating and abs(
                beta.get() - PREF_BETA[change["old"]]) < 1e-12:
            beta.set(PREF_BETA[change["new"]])  # beta was the objective's usual: take the new

    def _refresh_visibility(self) -> None:
        own = {f.name for f in dataclasses.fields(METHODS[self.method.value])}
        values = {k.path: k.get() for k in self.knobs.values()}
        for k in self.knobs.values():
            if k.is_method_knob:
                k.widget.layout.display = None if k.name in own else "none"
            elif k.path in APPLIES:  # shown only where the knob it depends on uses it
                on, wanted = APPLIES[k.path]
                k.widget.layout.display = None if values.get(on, wanted) == wanted else "none"
        cls = METHODS[self.method.value]
        shown = {k.path for k in self.knobs.values()}
        preset = ", ".join(f"{key.split('.')[1]} {config_value(self._shown, key)}"
                           for key in preset_values(self.preset, self.base.rl is not None,
                                                    self.base.pref is not None)
                           if key not in shown)
        self.header.value = (
            f"<b style='font-size:15px'>{html.escape(self._title)}</b> &nbsp;·&nbsp; "
            f"model <code>{html.escape(self.base.model)}</code> &nbsp;·&nbsp; "
            f"<b>{cls.name}</b>: {html.escape(cls.summary)}<br>"
            f"<span style='color:#555'>preset <b>{self.preset}</b>; not shown here: "
            f"{preset}</span>")

    # -- running ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self, **overrides: Any) -> bool:
        """Start a run in the background (what Run does). False if it could not start;
        the reason is shown in the panel."""
        try:
            self._start(overrides)
        except FtlabError:
            return False
        return True

    def _start(self, overrides: dict, here: bool = False) -> None:
        with self._lock:
            if self.running:
                msg = ("A run is already going. Press Stop (it ends after the current step) "
                       "or wait for it to finish, then press Run again.")
                self._show_message(msg)
                raise FtlabError(msg)
            try:
                cfg = self.build_config(**overrides)
            except FtlabError as e:
                self._show_message(readable(e))
                raise
            self._show_message("")
            self._show_config(cfg)
            self.config = cfg
            self.result, self.error, self.run_dir = None, None, None
            self._evals, self._steps, self._measure_s, self._ended = [], [], None, ""
            self._stop = StopFlag()
            self._done.clear()
        self._t0 = time.monotonic()
        # From code the kernel is busy until the run ends, so Stop could not be heard:
        # the notebook's interrupt does its work instead (``_work_here``).
        self.run_button.disabled, self.stop_button.disabled = True, here
        self.progress.value, self.progress.max = 0, cfg.resolved().train.max_steps
        self._here = here
        self._set_status("running", "Loading the model and the data…")
        threading.Thread(target=self._tick, daemon=True, name="ftlab-clock").start()
        if here:
            self._thread = None
            self._work_here(cfg)
            return
        self._thread = threading.Thread(target=self._work, args=(cfg,), daemon=True,
                                        name="ftlab-run")
        self._thread.start()

    def _work_here(self, cfg: RunConfig) -> None:
        """Train on the calling thread. On the main thread a first interrupt asks the run to
        stop after its step (Stop's clean ending) and is raised once the run has ended, so
        the cells after it do not run (``panel.result`` holds the stopped run); a second
        interrupt cuts the run."""
        if threading.current_thread() is not threading.main_thread():
            self._work(cfg)
            return
        heard = threading.Event()

        def on_interrupt(signum, frame) -> None:
            if heard.is_set():
                raise KeyboardInterrupt
            heard.set()
            self.stop()

        old = signal.signal(signal.SIGINT, on_interrupt)
        try:
            self._work(cfg)
        finally:
            signal.signal(signal.SIGINT, old)
        if heard.is_set() and self.error is None:
            raise KeyboardInterrupt

    def _work(self, cfg: RunConfig) -> None:
        listeners = [self._on_event, self.dashboard.on_event, *self.listeners]
        if self.samples is not None:
            listeners.append(self.samples.on_event)
        try:
            self.result = train(cfg, on_event=listeners, stop=self._stop,
                                evaluators=self.evaluators, runs_dir=self.runs_dir,
                                progress=False, reuse=self.reuse and not self.train_again.value)
            if self.result.from_cache:
                self._set_status(self.result.status, (
                    f"<b>loaded from the run cache</b> in {time.monotonic() - self._t0:.1f} s: "
                    "these settings ran before, so nothing was trained; change a knob, or "
                    f"tick 'train again'. That run: {self._ended}"))
        except BaseException as e:  # noqa: BLE001 - shown in the panel, re-raised by wait()
            self.error = e
            self.state = "failed"
            self._show_message(readable(e))
            self._set_status("failed", "The run failed; the message above says why."
                             + (f" Its folder: <code>{html.escape(self.run_dir)}</code>"
                                if self.run_dir else ""))
        finally:
            self.dashboard.flush()
            self.run_button.disabled, self.stop_button.disabled = False, True
            self._done.set()

    def _tick(self) -> None:
        """Keep the elapsed time moving between events (model load, evaluations)."""
        while not self._done.wait(1.0):
            self.elapsed.value = f"{time.monotonic() - self._t0:.0f} s"
        self.elapsed.value = f"{time.monotonic() - self._t0:.1f} s"

    def stop(self) -> None:
        """Ask the run to end after the current step (what Stop does)."""
        if not self.running:
            self._show_message("No run is going.")
            return
        self._stop.set()
        self.stop_button.disabled = True
        self._set_status("running", f"Stopping: the step in progress ends first, then "
                         f"{self._closing_measure()}…")

    def _closing_measure(self) -> str:
        """What a stopped run still does, and why it takes as long as it does."""
        measured = (["validation loss"] if self.base.rl is None else []) + list(
            self.evaluators or {})
        what = ", ".join(measured) or "nothing to measure"
        took = (f"about {self._measure_s:.0f} s, as measuring the base model took"
                if self._measure_s is not None else "as long as measuring the base model")
        return (f"the model it ends with is measured once more ({what}"
                f"; {took}), so the run's folder holds its final numbers")

    def wait(self, timeout: float | None = None) -> TrainResult | None:
        """Block until the run ends; return its result or raise its error.

        An interrupt (the notebook's stop button) stops the run cleanly first.
        """
        thread = self._thread
        if thread is None:
            return self.result
        try:
            thread.join(timeout)
        except KeyboardInterrupt:
            self.stop()
            thread.join()
            raise
        if thread.is_alive():
            return None
        if self.error is not None:
            raise self.error
        return self.result

    def run(self, **overrides: Any) -> TrainResult:
        """Run with the panel's settings (plus overrides) and block until done.

        The widgets update exactly as for the Run button; errors are raised (and shown).
        It trains on the calling thread, not on a second one as Run does: a second thread
        steps 1.3-1.5x slower once this one has computed (``benchmarks/thread_penalty.py``).
        """
        self._start(overrides, here=True)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    # -- listening --------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        e = as_dict(event)
        kind = e["kind"]
        if kind == "start":
            self.run_dir = e["run_dir"]
            self.progress.max = e["total_steps"]
            self._started_at = time.monotonic()
            self._set_status("running", "Step 0: measuring the base model before training…")
        elif kind == "step":
            self.progress.value = e["step"]
            self._steps.append(e)
            if self._stop.is_set():
                self._set_status("running", f"Stopped after step {e['step']}: "
                                 f"{self._closing_measure()}…")
                return
            loss = f" · train loss {e['loss']:.3f}" if self.base.rl is None else ""
            sampled = self._quoted(e.get("metrics") or {})  # a policy run: its sampled answers
            self._set_status("running", f"step {e['step']}/{e['total_steps']}{loss}"
                             f"{' · this step: ' + sampled if sampled else ''}"
                             f" · {e['elapsed_s']:.1f} s")
        elif kind == "val_loss" and not self._evals:
            self._set_status("running", f"Step 0: validation loss {e['val_loss']:.3f}; now "
                             "the base model's answers are measured…")
        elif kind == "eval":
            self._evals.append(e)
            if len(self._evals) == 1:
                self._measure_s = time.monotonic() - self._started_at
            elif not self._stop.is_set():
                val = (f"validation loss {e['val_loss']:.3f} (best {e['best_val_loss']:.3f} at "
                       f"step {e['best_step']})" if math.isfinite(e["val_loss"]) else "")
                self._set_status("running", f"step {e['step']}: "
                                 + " · ".join(filter(None, [val, self._changes(self._evals)])))
        elif kind == "end":
            self.state = e["status"]
            f = e.get("final") or {}
            where = f" · saved in <code>{html.escape(self.run_dir or '')}</code>"
            if e["status"] == "failed":
                return  # _work shows the message with the raised error
            words = {"completed": "completed", "stopped": "stopped by you",
                     "early_stopped": "stopped early (validation loss stopped improving; "
                     "best weights restored)"}.get(e["status"], e["status"])
            val = f.get("final_val_loss")
            first = f.get("first_val_loss")
            loss = (f"validation loss {first:.3f} → {val:.3f}"
                    if isinstance(val, float) and isinstance(first, float) else "")
            changes = " · ".join(filter(None, [loss, self._changes(self._evals)
                                               or self._changes(self._steps)]))
            self._ended = (f"<b>{words}</b> at step {e['step']}"
                           f"{' · ' + changes if changes else ''} · "
                           f"{f.get('wall_s', 0):.1f} s{where}")
            self._set_status(e["status"], self._ended)

    def _plotted(self) -> list[str]:
        return [n for names in self.dashboard.panels.values() for n in names]

    def _quoted(self, metrics: Mapping[str, Any]) -> str:
        """The plotted numbers among ``metrics``, by the names the legend shows."""
        return " · ".join(f"{metric_label(n)} {metrics[n]:.3g}" for n in self._plotted()
                          if isinstance(metrics.get(n), (int, float)))

    def _changes(self, records: Sequence[dict]) -> str:
        """Each plotted number, first record → latest. Given the evaluations, the view the
        lesson reads (a policy run's held-out answers, not its per-step samples)."""
        if len(records) < 2:
            return ""
        first, last = records[0].get("metrics") or {}, records[-1].get("metrics") or {}
        return " · ".join(f"{metric_label(n)} {first[n]:.3g} → {last[n]:.3g}"
                          for n in self._plotted()
                          if isinstance(first.get(n), (int, float))
                          and isinstance(last.get(n), (int, float)))

    # -- showing ----------------------------------------------------------------------
    def _set_status(self, state: str, text: str) -> None:
        self.state = state
        if state == "running" and self._here and not self._stop.is_set():
            text += (" · started from code: to stop, interrupt the kernel (■); the run ends "
                     "after its step, as Stop does")
        color = _STYLE.get(state, "#555")
        self.status.value = f"<span style='color:{color}'>● {state}</span> &nbsp; {text}"

    def _show_message(self, text: str, refused: str | None = None) -> None:
        self._refused = refused
        self.message.value = (f"<div style='background:#fdecea;border-left:4px solid #b00020;"
                              f"padding:6px 10px;white-space:pre-wrap'>{html.escape(text)}</div>"
                              if text else "")
        self.message.layout.display = None if text else "none"

    @property
    def status_text(self) -> str:
        """The status line as plain text (for checks and tests)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value)).replace("\xa0", " ")

    @property
    def message_text(self) -> str:
        """The error/refusal message shown in the panel, as plain text ('' if none)."""
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.message.value))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)
