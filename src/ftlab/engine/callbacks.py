"""Trainer callbacks, one concern each: events, evaluations, early stopping, Stop, progress,
sharing the CPUs.

transformers' ``Trainer`` (and TRL's trainers, its subclasses) call these hooks; ftlab
owns no loop. Each callback subclasses ``TrainerCallback``, so a hook name that does not
exist is simply never called and a lab adds its own callback through
``train(config, callbacks=[...])`` instead of editing these.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback

from ..events import EvalLogged, EventBus, SamplesLogged, StepLogged, ValLossMeasured
from ..threads import share_cpus
from . import distributed


class StepEvents(TrainerCallback):
    """Every logged optimizer step becomes a ``StepLogged`` event (loss, lr, step time).

    ``step_metrics`` renames the extra numbers a trainer logs (TRL's GRPO logs rewards,
    KL and completion length) into the run's namespaced metrics.
    """

    def __init__(self, bus: EventBus, total_steps: int,
                 step_metrics: Mapping[str, str] | None = None) -> None:
        self.bus, self.total_steps = bus, total_steps
        self.step_metrics = dict(step_metrics or {})
        self.steps: list[dict] = []
        self.step_times: list[float] = []
        self._t0 = time.perf_counter()
        self._step_start = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.step_times.append(time.perf_counter() - self._step_start)

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "loss" not in logs or "eval_loss" in logs:
            return
        metrics = {name: float(logs[key]) for key, name in self.step_metrics.items()
                   if isinstance(logs.get(key), (int, float))}
        ev = StepLogged(step=state.global_step, total_steps=self.total_steps,
                        loss=float(logs["loss"]),
                        learning_rate=float(logs.get("learning_rate", 0.0)),
                        grad_norm=_float_or_none(logs.get("grad_norm")),
                        elapsed_s=time.perf_counter() - self._t0, metrics=metrics)
        self.steps.append(ev.to_dict())
        self.bus.emit(ev)


@dataclass
class EvalContext:
    """What an evaluator may read besides the model: where the run is and its own rows."""

    step: int
    config: Any  # the resolved RunConfig
    splits: Any  # the run's Splits: train, validation and held-out test rows
    full: bool  # the first or the final evaluation (every evaluator runs), else scheduled
    run_dir: Path | None = None  # where an evaluator keeps per-item answers (``ftlab.runs``)


Evaluator = Callable[..., Any]  # (model, tokenizer, EvalContext) -> EvalResult | dict


def namespaced(name: str, value: Any) -> dict[str, float]:
    """An evaluator's output as ``{"name.metric": number}`` (``name.score`` for a result)."""
    if hasattr(value, "score") and hasattr(value, "breakdown"):  # an EvalResult
        out = {f"{name}.score": float(value.score)}
        out.update({f"{name}.{k}": float(v) for k, v in value.breakdown.items()
                    if isinstance(v, (int, float))})
        out.update({f"{name}.{k}": float(v) for k, v in value.extra.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return out
    if isinstance(value, Mapping):
        return {f"{name}.{k}": float(v) for k, v in value.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {name: float(value)}


class EvaluatorFailed(RuntimeError):
    """An evaluator raised (or returned what is not a number): the run's failure names it,
    since a traceback through the trainer's hooks does not say which one of several."""

    def __init__(self, name: str, cause: BaseException) -> None:
        self.name, self.cause = name, cause
        super().__init__(f"{type(cause).__name__}: {cause} (raised by the evaluator {name!r})")


def run_evaluators(evaluators: Mapping[str, Evaluator], model, tok,
                   ctx: EvalContext) -> dict[str, float]:
    """Every evaluator due at ``ctx``, merged; two evaluators never share a metric name."""
    merged: dict[str, float] = {}
    for name, fn in evaluators.items():
        if not ctx.full and getattr(fn, "when", "always") == "ends":
            continue
        try:
            metrics = namespaced(name, fn(model, tok, ctx))
        except Exception as e:  # noqa: BLE001 - any error of learner code: name its author
            raise EvaluatorFailed(name, e) from e
        for key, value in metrics.items():
            if key in merged:
                raise ValueError(f"evaluators report the metric {key!r} twice; give them "
                                 "names that do not prefix each other")
            merged[key] = value
    return merged


class Evaluations(TrainerCallback):
    """On each evaluation: validation loss (the trainer's), the evaluators, fixed samples.

    The schedule is the trainer's (``eval_steps``); ``train()`` adds one before the first
    step and one on the model it returns, where every evaluator runs (``full``).
    """

    def __init__(self, bus: EventBus, tok, splits, config, evaluators: Mapping[str, Evaluator],
                 sample_rows: list[dict], sample_tokens: int,
                 run_dir: Path | None = None) -> None:
        self.bus, self.tok, self.splits, self.config = bus, tok, splits, config
        self.run_dir = run_dir
        self.evaluators = dict(evaluators)
        self.sample_rows, self.sample_tokens = sample_rows, sample_tokens
        self.evals: list[dict] = []
        self.samples: list[dict] = []
        self.best_val_loss, self.best_step = math.inf, 0
        self.force_full = False
        self.last_full_step = -1
        self.last_val_loss: float | None = None
        self.trainer_metrics: Mapping[str, str] = {}  # the trainer's eval key -> metric name
        self._t0 = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
        step = state.global_step
        full = self.force_full or step == 0 or step >= args.max_steps
        val_loss = float(metrics["eval_loss"])
        if not self.force_full:
            self.last_val_loss = val_loss
        # A step measured for the first time is a candidate for the best, the closing
        # evaluation of a run stopped between scheduled ones included; a step measured
        # again (early stopping's restored weights) is not.
        if val_loss < self.best_val_loss and all(e["step"] != step for e in self.evals):
            self.best_val_loss, self.best_step = val_loss, step
        if self.evaluators and not self.force_full:  # a curve's point before their minute
            self.bus.emit(ValLossMeasured(step=step, val_loss=val_loss))
        ctx = EvalContext(step=step, config=self.config, splits=self.splits, full=full,
                          run_dir=self.run_dir)
        # Under a launcher the evaluators and samples run on rank 0 only, which writes the
        # record; the weights are the same on every rank, and no decision rests on them.
        main = distributed.is_main()
        extra = run_evaluators(self.evaluators, model, self.tok, ctx) if main else {}
        extra.update({name: float(metrics[key]) for key, name in self.trainer_metrics.items()
                      if key in metrics})
        if full:
            self.last_full_step = step
        ev = EvalLogged(step=step, val_loss=val_loss, perplexity=math.exp(min(val_loss, 50)),
                        best_val_loss=self.best_val_loss, best_step=self.best_step,
                        elapsed_s=time.perf_counter() - self._t0, metrics=extra, full=full)
        self.evals.append(ev.to_dict())
        self.bus.emit(ev)
        if main:
            self._emit_samples(model, step)

    def _emit_samples(self, model, step: int) -> None:
        if not self.sample_rows or model is None:
            return
        from ..generation import generate_answers

        answers = generate_answers(model, self.tok, [r["messages"] for r in self.sample_rows],
                                   max_new_tokens=self.sample_tokens)
        rows = [{"question": r["messages"][-2]["content"],
                 "expected": r["messages"][-1]["content"], "answer": a.text,
                 "stopped": a.stopped} for r, a in zip(self.sample_rows, answers)]
        ev = SamplesLogged(step=step, samples=rows)
        self.samples.append(ev.to_dict())
        self.bus.emit(ev)


class EarlyStopping(TrainerCallback):
    """Stop after ``patience`` evaluations without a better validation loss, then put the
    best weights back, so the run ends on its best model rather than its last."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best, self.best_step, self.bad_evals = math.inf, 0, 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.triggered = self.restored = False
        self._training_over = False

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
        if self._training_over:
            return  # the evaluation of the returned model is not a candidate
        val_loss = float(metrics["eval_loss"])
        if val_loss < self.best:
            self.best, self.best_step, self.bad_evals = val_loss, state.global_step, 0
            self.best_state = {n: p.detach().clone() for n, p in model.named_parameters()
                               if p.requires_grad}
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            self.triggered = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, model=None, **kw):
        self._training_over = True
        if self.best_state is None or self.best_step == state.global_step:
            return
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.best_state:
                    p.copy_(self.best_state[name])
        self.restored = True


class StopFlag(threading.Event):
    """Set it (from a button, another thread, a test) and the run stops after this step."""


class StopOnFlag(TrainerCallback):
    """Honour the Stop button: end the run after the optimizer step in progress.

    Under a launcher every rank stops at the same step: the flag counts when any rank has
    it, asked at each step's end only (``distributed.any_rank``)."""

    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag
        self.stopped = False

    def _check(self, control) -> None:
        if distributed.any_rank(self.flag.is_set()):
            self.stopped = True
            control.should_training_stop = True

    def on_step_end(self, args, state, control, **kw):
        self._check(control)

    def on_log(self, args, state, control, **kw):
        if distributed.world_size() == 1:
            self._check(control)  # a Stop pressed while this step was reported


class ShareCpus(TrainerCallback):
    """Before every step, fit the thread count to the CPUs other processes leave free
    (``ftlab.threads.share_cpus``): two runs on shared cores each slow about 2x, not 8x."""

    def on_step_begin(self, args, state, control, **kwargs):
        share_cpus()


class ProgressBar(TrainerCallback):
    """A tqdm bar over optimizer steps, with the latest training loss."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=not enabled)

    def on_step_end(self, args, state, control, **kw):
        self.bar.update(1)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def close(self) -> None:
        self.bar.close()


def _float_or_none(x) -> float | None:
    return None if x is None else float(x)
