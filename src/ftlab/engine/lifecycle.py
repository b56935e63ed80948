"""One run lifecycle for every trainer: ``train(config)`` from a config to a measured run.

Whatever trains — the supervised path for the five methods, GRPO against a reward, the
trainers that come next — a run goes through ``execute`` here: the run cache, the folder,
the events, peak memory, the record, Stop, interrupts and failure messages. A trainer
supplies only what differs, as a ``TrainerPart`` (``supervised.py``, ``policy.py``): how to
load its data and model, which callbacks of its own it adds, how to build its transformers
``Trainer``, what it runs (evaluate, train, evaluate) and its final figures. ftlab owns no
training loop: the callbacks in ``callbacks.py`` turn the trainer's hooks into events.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..config import RunConfig
from ..errors import ConfigError, RunInterrupted, TrainingError
from ..events import (
    EvalLogged,
    EventBus,
    Listener,
    RunEnded,
    RunStarted,
    SamplesLogged,
    StepLogged,
)
from ..memory import PeakMemory, check_fits
from ..models import choose_placement
from ..runs import Run, cache_key, find_run, writable_runs_root
from ..tracking import Trackers, check_installed
from . import distributed
from .callbacks import (
    Evaluator,
    EvaluatorFailed,
    ProgressBar,
    ShareCpus,
    StepEvents,
    StopFlag,
    StopOnFlag,
)
from .part import TrainerPart
from .policy import PolicyPart
from .preference import PreferencePart
from .supervised import SupervisedPart

__all__ = ["execute", "explain", "replay", "train"]


def train(
    config: RunConfig,
    *,
    on_event: Listener | list[Listener] | None = None,
    stop: threading.Event | None = None,
    evaluators: Mapping[str, Evaluator] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    runs_dir: str | Path | None = None,
    progress: bool = True,
    reuse: bool = False,
) -> Run:
    """Train the model that ``config`` describes; return the run (history, final figures,
    the trained model).

    ``on_event`` listeners receive ``RunStarted``, ``StepLogged``, ``EvalLogged``,
    ``SamplesLogged`` and ``RunEnded`` as they happen. Setting ``stop`` ends the run after
    the current step (status ``stopped``). ``evaluators`` (``name -> fn(model, tok, ctx)``)
    add namespaced measurements to every evaluation; ``callbacks`` are extra transformers
    ``TrainerCallback``s. Every run writes a folder under ``runs_dir`` (``ftlab.runs``).
    ``reuse=True`` returns an earlier run of the same resolved config and evaluators from
    its folder instead of training (its events are replayed to the listeners), if that
    folder is complete and consistent (``ftlab.runs.reuse_problems``); a damaged one is
    named in a ``RunFolderWarning``, kept, and the run trained again.

    A config with an ``rl`` section is a policy-optimisation run (``policy.py``), one with a
    ``pref`` section a preference run (``preference.py``), else a supervised one
    (``supervised.py``): same arguments, events, folder and failures.
    Every argument is checked here, before a model loads or a folder is started.
    """
    if not isinstance(config, RunConfig):
        raise ConfigError("config", config, "a RunConfig",
                          "Build one: ftlab.RunConfig(method='lora'), or take a lab's: "
                          "lab.config(arm).")
    cfg = config.resolved()
    evaluators = _checked_evaluators(evaluators)
    callbacks = _checked_callbacks(callbacks)
    listeners = on_event if isinstance(on_event, list) else [on_event] if on_event else []
    for fn in listeners:
        if not callable(fn):
            raise ConfigError("on_event", fn, "a function of one event, or a list of them",
                              "e.g. on_event=print.")
    writable_runs_root(runs_dir)  # a bad FTLAB_RUNS is said now, not after the model loads
    check_installed(cfg.train.report_to)  # a tracker's missing package, too
    distributed.check(cfg)  # under a launcher: a batch that splits evenly, no GRPO
    if reuse:  # (on rank 0, its answer sent to every rank, under a launcher)
        cached = distributed.on_main(lambda: find_run(cfg, runs_dir, evaluators), cfg)
        if cached is not None:
            return replay(cached, listeners)
    placement = choose_placement(cfg.device, cfg.dtype)
    Part = (PolicyPart if cfg.rl is not None
            else PreferencePart if cfg.pref is not None else SupervisedPart)
    return execute(Part(cfg, placement, evaluators), listeners=listeners, stop=stop,
                   callbacks=callbacks, runs_dir=runs_dir, progress=progress)


def _checked_evaluators(evaluators: Any) -> dict[str, Evaluator]:
    """``name -> fn(model, tok, ctx)``: a name is the metrics' prefix, so it is a word."""
    if evaluators is None:
        return {}
    if not isinstance(evaluators, Mapping):
        raise ConfigError("evaluators", evaluators, "a dict of name -> fn(model, tok, ctx)",
                          "e.g. evaluators={'format': FormatWatch(rows)}.")
    for name, fn in evaluators.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("evaluators", name, "names that are non-empty strings",
                              "A name prefixes the evaluator's metrics ('format.score').")
        if not callable(fn):
            raise ConfigError(f"evaluators[{name!r}]", fn, "a function (model, tok, ctx)",
                              "It returns a number, a dict of numbers or an EvalResult.")
    return dict(evaluators)


def _checked_callbacks(callbacks: Any) -> list:
    """transformers ``TrainerCallback`` instances (or classes, which the trainer builds)."""
    if isinstance(callbacks, (TrainerCallback, type, str)) or not isinstance(
            callbacks, Sequence):
        raise ConfigError("callbacks", callbacks, "a list of transformers TrainerCallback "
                          "objects", "Wrap one callback in a list: callbacks=[MyCallback()].")
    for cb in callbacks:
        is_class = isinstance(cb, type) and issubclass(cb, TrainerCallback)
        if not (is_class or isinstance(cb, TrainerCallback)):
            raise ConfigError("callbacks", cb, "transformers TrainerCallback objects",
                              "Subclass transformers.TrainerCallback and pass an instance.")
    return list(callbacks)


def execute(part: TrainerPart, *, listeners: Sequence[Listener] = (),
            stop: threading.Event | None = None, callbacks: Sequence[TrainerCallback] = (),
            runs_dir: str | Path | None = None, progress: bool = True) -> Run:
    """Run ``part`` from its data to its record; every ending is written to the folder.

    A failure raises ``TrainingError`` and an interrupt ``RunInterrupted``, both carrying
    the run (its folder keeps every metric measured so far). A run that will not fit its
    GPU's free memory raises ``DoesNotFitError`` first, before any model (a GRPO run's
    reward model included) is built and before its folder exists.
    """
    from transformers import set_seed

    cfg, placement = part.cfg, part.placement
    check_fits(cfg, placement)  # the config is known; nothing is loaded yet
    set_seed(cfg.seed)
    part.prepare()
    bus = EventBus(list(listeners))
    writer = distributed.run_writer(cfg, placement.device, runs_dir)  # rank 0's folder
    # the end record is logged by ``record``, before the weights and the final status
    bus.subscribe(lambda e: writer.log(e.to_dict())
                  if e.recorded and e.kind not in ("start", "end") else None)
    total = cfg.train.max_steps
    events = StepEvents(bus, total, part.step_metrics)
    stopper = StopOnFlag(stop or StopFlag())
    bar = ProgressBar(total, part.label, progress and distributed.is_main())
    key = cache_key(cfg, part.evaluators)
    trackers = Trackers(cfg.train.report_to, writer.path, distributed.is_main())
    trainer = None
    weights = writer.path / "weights"
    partial = writer.path / ".weights.partial"

    def step() -> int:
        return trainer.state.global_step if trainer is not None else 0

    def record(status: str, error: str | None = None, save: bool = False,
               **more: Any) -> tuple[dict, RunEnded]:
        # The order makes a finished status the folder's last word: the end record, the
        # weights (saved aside, then renamed into place), result.json, then status.json.
        # A kill at any point leaves a folder that the run cache does not reuse.
        final = {**part.final(step(), events), **more}
        end = RunEnded(status=status, step=step(), error=error, final=final)
        writer.log(end.to_dict())
        if save:
            model = part.returned_model(trainer)
            model.save_pretrained(partial)
            part.tokenizer.save_pretrained(partial)
            partial.rename(weights)
        writer.finish(status, {"status": status, "final": final, "cache_key": key},
                      error=error)
        return final, end

    def the_run(status: str, final: dict, error: str | None = None) -> Run:
        return Run(path=writer.path, config=cfg, status=status, env=writer.env,
                   steps=events.steps, evals=part.evals, samples=part.samples, final=final,
                   error=error, cache_key=key,
                   model=part.returned_model(trainer) if trainer is not None else part.model,
                   tokenizer=part.tokenizer, splits=part.splits)

    t0 = time.perf_counter()
    try:
        before, after = part.callbacks(bus, writer.path)
        trainer = part.build([ShareCpus(), events, *before, stopper, bar, *after, *callbacks],
                             writer.path)
        trackers.start(trainer)  # (train.report_to: TensorBoard, MLflow; ftlab.tracking)
        params = part.params(trainer)
        bus.emit(RunStarted(run_dir=str(writer.path), config=cfg.to_dict(), total_steps=total,
                            params=params))
        with PeakMemory(placement.device) as mem, distributed.sigint_on_main():
            part.run(trainer)
        bar.close()
        status = "stopped" if stopper.stopped else part.ending() or "completed"
        trackers.end(status)
        final, end = record(  # (the weights: rank 0's to save, as its folder's)
            status, save=cfg.save_weights and distributed.is_main(),
            wall_s=time.perf_counter() - t0,
            peak_memory_bytes=mem.peak_bytes,
            peak_memory_above_start_bytes=mem.above_baseline_bytes, peak_memory_kind=mem.kind,
            params=params, device=placement.device, dtype=placement.dtype_name,
            **part.figures(trainer))
    except BaseException as e:  # noqa: BLE001 - record every ending, then re-raise
        interrupted = isinstance(e, KeyboardInterrupt) or distributed.interrupted()
        status = "interrupted" if interrupted else "failed"
        msg = explain(e, cfg, step())
        # A second Ctrl-C must not cut the record of the first: the folder gets its status,
        # result.json and every metric measured so far.
        main = threading.current_thread() is threading.main_thread()
        old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        final: dict = {}
        try:
            trackers.end(status)
            if distributed.is_main():  # (another rank's writer holds rank 0's path)
                shutil.rmtree(partial, ignore_errors=True)  # weights cut by this failure
            final, end = record(status, msg)
            bus.emit(end)
        except Exception as rec_err:  # noqa: BLE001 - a full disk: say so, keep the cause
            msg += f" (The run folder could not be updated: {rec_err}.)"
        finally:
            bar.close()
            writer.close()
            if main:
                signal.signal(signal.SIGINT, old_handler)
        run = the_run(status, final, msg)
        if interrupted:
            raise RunInterrupted(f"{msg} Its folder keeps every metric measured so far: "
                                 f"{writer.path}", run) from None
        raise TrainingError(msg, run=run) from e
    writer.close()
    bus.emit(end)  # listeners hear of the end once the folder holds all of it
    return the_run(status, final)


def replay(run: Run, listeners: Sequence[Listener]) -> Run:
    """Send a stored run's events to listeners (a dashboard redraws it) and return it."""
    bus = EventBus(list(listeners))
    bus.emit(RunStarted(run_dir=str(run.path), config=run.config.to_dict(),
                        total_steps=run.config.train.max_steps or 0,
                        params=run.final.get("params", {})))
    records = sorted([*run.steps, *run.evals, *run.samples],
                     key=lambda r: (r["step"], {"step": 0, "eval": 1, "samples": 2}[r["kind"]]))
    for rec in records:
        bus.emit(_EVENT_TYPES[rec["kind"]](**{k: v for k, v in rec.items() if k != "kind"}))
    bus.emit(RunEnded(status=run.status, step=run.final.get("steps", 0), error=run.error,
                      final=run.final))
    run.from_cache = True
    return run


_EVENT_TYPES = {"step": StepLogged, "eval": EvalLogged, "samples": SamplesLogged}


def explain(e: BaseException, cfg: RunConfig, step: int) -> str:
    """The one-paragraph message of a run that did not finish."""
    import torch

    text = str(e).lower()
    cause = e.cause if isinstance(e, EvaluatorFailed) else e
    if isinstance(cause, torch.OutOfMemoryError) or "out of memory" in text:
        return (f"Out of memory at step {step} with method {cfg.method.name!r}, batch_size "
                f"{cfg.train.batch_size}, max_length {cfg.data.max_length}. Lower "
                "train.batch_size or data.max_length, or use 'lora'/'qlora' instead of 'full'.")
    if isinstance(e, KeyboardInterrupt):
        return f"Interrupted at step {step}."
    if isinstance(e, EvaluatorFailed):
        return (f"Training failed at step {step}: {e}. Fix the evaluator, or leave it out "
                "of evaluators=.")  # the cause first, as every failure reads
    n = distributed.world_size()
    if n > 1:  # which process; a broken connection is usually another one's failure
        peer = any(w in text for w in ("connection closed", "connection reset", "broken pipe"))
        return (f"Training failed at step {step} on rank {distributed.rank()} of {n}: "
                f"{type(e).__name__}: {e}" + (" (Another process of this run failed first: "
                "its own message, and torchrun's summary, say why.)" if peer else ""))
    return f"Training failed at step {step}: {type(e).__name__}: {e}"
