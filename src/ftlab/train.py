"""Supervised fine-tuning: ``train(config)`` from a config to measured results.

One path for all five methods: ftlab tokenizes the chats itself (prompt masked, end-of-turn
learned, see ``data/formats.py``) and hands them to transformers' ``Trainer``. ftlab owns
no training loop; ``_FtlabCallback`` turns the trainer's hooks into ftlab events, runs the
evaluations, stops early, and honours the stop flag after every optimizer step.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .data import Splits, corrupt_formats, encode, make_task, read_jsonl
from .errors import DatasetError, TrainingError
from .events import (
    EvalLogged,
    EventBus,
    Listener,
    RunEnded,
    RunStarted,
    SamplesLogged,
    StepLogged,
)
from .generation import generate_answers
from .memory import PeakMemory, breakdown
from .methods import apply_method, param_report
from .models import choose_placement, load_model, resolve_source
from .runs import RunWriter

Evaluator = Callable[[Any, Any], dict]  # (model, tokenizer) -> {metric: value}


class StopFlag(threading.Event):
    """Set it (from a button, another thread, a test) and the run stops after this step."""


@dataclass
class TrainResult:
    """What a run did: its history, final figures, and the trained model to keep using."""

    config: RunConfig
    status: str
    run_dir: Path
    steps: list[dict]
    evals: list[dict]
    samples: list[dict]
    final: dict
    model: Any = field(repr=False, default=None)
    tokenizer: Any = field(repr=False, default=None)
    splits: Splits | None = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"status": self.status, "run_dir": str(self.run_dir), "final": self.final,
                "config": self.config.to_dict()}


def load_splits(config: RunConfig) -> Splits:
    """The run's examples: a generated task, or the user's JSONL file split 60/20/20."""
    d = config.data
    if d.path is None:
        return make_task(d.task, d.size, seed=config.seed)
    rows = read_jsonl(d.path)
    if len(rows) < 3:
        raise DatasetError(d.path, f"only {len(rows)} rows; train, validation and test need "
                           "at least one each", "Add more rows.")
    random.Random(config.seed).shuffle(rows)
    n_val = n_test = max(1, len(rows) // 5)
    return Splits(train=rows[n_val + n_test:], validation=rows[:n_val],
                  test=rows[n_val:n_val + n_test])


def build_model(config: RunConfig):
    """Load the base (quantized for QLoRA) and apply the method: (model, tokenizer)."""
    placement = choose_placement(config.device, config.dtype)
    model, tok = load_model(config.model, device=config.device, dtype=config.dtype,
                            quantization=config.method.quantization(placement))
    source = resolve_source(config.model)
    return apply_method(model, config.method, tok, source), tok


def tokenize_splits(config: RunConfig, splits: Splits, tok) -> tuple[list[dict], list[dict]]:
    """Training rows in the configured format (a share corrupted); validation rows clean."""
    d = config.data
    fmts = corrupt_formats(len(splits.train), d.corruption_rate, d.corruption,
                           seed=config.seed, base=d.format)
    train = [encode(r, tok, f, d.max_length) for r, f in zip(splits.train, fmts)]
    val = [encode(r, tok, d.format, d.max_length) for r in splits.validation]
    return train, val


def train(
    config: RunConfig,
    *,
    on_event: Listener | list[Listener] | None = None,
    stop: threading.Event | None = None,
    evaluators: dict[str, Evaluator] | None = None,
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune the model that ``config`` describes; return its history and final figures.

    ``on_event`` listeners receive ``RunStarted``, ``StepLogged``, ``EvalLogged``,
    ``SamplesLogged`` and ``RunEnded`` as they happen. Setting ``stop`` ends the run after
    the current step (status ``stopped``). ``evaluators`` add lab-specific measurements to
    every evaluation. Every run writes a folder under ``runs_dir`` (see ``ftlab.runs``).
    """
    from transformers import set_seed

    cfg = config.resolved()
    placement = choose_placement(cfg.device, cfg.dtype)
    set_seed(cfg.seed)
    splits = load_splits(cfg)
    model, tok = build_model(cfg)
    train_rows, val_rows = tokenize_splits(cfg, splits, tok)

    listeners = on_event if isinstance(on_event, list) else [on_event] if on_event else []
    bus = EventBus(listeners)
    writer = RunWriter(cfg, placement.device, runs_dir)
    bus.subscribe(lambda e: writer.log(e.to_dict()) if e.kind != "start" else None)
    params = param_report(model, cfg.method.name)
    seq_len = max(len(r["input_ids"]) for r in train_rows)
    callback = _FtlabCallback(cfg, bus, stop or StopFlag(), splits, tok, evaluators or {},
                              progress)
    bus.emit(RunStarted(run_dir=str(writer.path), config=cfg.to_dict(),
                        total_steps=cfg.train.max_steps, params=params.to_dict()))
    trainer = _make_trainer(cfg, placement, model, tok, train_rows, val_rows, callback,
                            writer.path)
    t0 = time.perf_counter()
    try:
        with PeakMemory(placement.device) as mem:
            callback.evaluate_now(trainer)  # step 0: where the base model starts
            trainer.train()
            if callback.last_eval_step != trainer.state.global_step:
                callback.evaluate_now(trainer)
        callback.restore_best(model)
    except BaseException as e:  # noqa: BLE001 - record every ending, then re-raise
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        msg = _explain(e, cfg, callback.step)
        partial = callback.partial_final()
        writer.finish(status, {"final": partial}, error=msg)
        bus.emit(RunEnded(status=status, step=callback.step, error=msg, final=partial))
        callback.close()
        writer.close()
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TrainingError(msg) from e
    callback.close()
    final = {
        **callback.partial_final(),
        "wall_s": time.perf_counter() - t0,
        "peak_memory_bytes": mem.peak_bytes,
        "peak_memory_above_start_bytes": mem.above_baseline_bytes,
        "peak_memory_kind": mem.kind,
        "memory_breakdown": breakdown(model, cfg.train.batch_size, seq_len).to_dict(),
        "params": params.to_dict(),
        "device": placement.device,
        "dtype": placement.dtype_name,
    }
    status = callback.status
    writer.finish(status, {"status": status, "final": final})
    if cfg.save_weights:
        _save_weights(model, tok, writer.path / "weights")
    bus.emit(RunEnded(status=status, step=callback.step, error=None, final=final))
    writer.close()
    return TrainResult(config=cfg, status=status, run_dir=writer.path, steps=callback.steps,
                       evals=callback.evals, samples=callback.samples, final=final,
                       model=model, tokenizer=tok, splits=splits)


def _make_trainer(cfg, placement, model, tok, train_rows, val_rows, callback, run_dir):
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments

    t = cfg.train
    args = TrainingArguments(
        output_dir=str(run_dir),  # nothing is saved by the trainer itself (save_strategy="no")
        max_steps=t.max_steps, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, optim="adamw_torch",
        logging_steps=1, eval_strategy="steps", eval_steps=cfg.eval.every,
        save_strategy="no", report_to=[], seed=cfg.seed, data_seed=cfg.seed,
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=placement.device == "cpu",
    )
    collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows,
                      data_collator=collator, callbacks=[callback])
    trainer.remove_callback(PrinterCallback)  # our events and progress bar report instead
    return trainer


def _explain(e: BaseException, cfg: RunConfig, step: int) -> str:
    text = str(e).lower()
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in text:
        return (f"Out of memory at step {step} with method {cfg.method.name!r}, batch_size "
                f"{cfg.train.batch_size}, max_length {cfg.data.max_length}. Lower "
                "train.batch_size or data.max_length, or use 'lora'/'qlora' instead of 'full'.")
    if isinstance(e, KeyboardInterrupt):
        return f"Interrupted at step {step}."
    return f"Training failed at step {step}: {type(e).__name__}: {e}"


def _save_weights(model, tok, path: Path) -> None:
    model.save_pretrained(path)
    tok.save_pretrained(path)


class _FtlabCallback:
    """Trainer hooks -> ftlab events, evaluations, early stopping and the stop flag."""

    def __init__(self, cfg: RunConfig, bus: EventBus, stop: threading.Event, splits: Splits,
                 tok, evaluators: dict[str, Evaluator], progress: bool) -> None:
        self.cfg, self.bus, self.stop, self.tok = cfg, bus, stop, tok
        self.evaluators = evaluators
        self.sample_rows = splits.validation[: cfg.eval.samples or 0]
        self.steps: list[dict] = []
        self.evals: list[dict] = []
        self.samples: list[dict] = []
        self.status = "completed"
        self.step = 0
        self.last_eval_step = -1
        self.best_val_loss, self.best_step, self.best_state = math.inf, 0, None
        self.bad_evals = 0
        self.step_times: list[float] = []
        self._t0 = time.perf_counter()
        self._step_start = 0.0
        self._trainer = None
        self.bar = tqdm(total=cfg.train.max_steps, desc=f"{cfg.method.name} training",
                        unit="step", disable=not progress)

    # transformers calls every on_* hook of a callback object; unused ones are no-ops
    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_begin(self, args, state, control, **kw):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.step_times.append(time.perf_counter() - self._step_start)
        self.step = state.global_step
        self.bar.update(1)
        self._check_stop(control)

    def _check_stop(self, control) -> None:
        if self.stop.is_set():
            self.status = "stopped"
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            ev = StepLogged(step=state.global_step, total_steps=self.cfg.train.max_steps,
                            loss=float(logs["loss"]),
                            learning_rate=float(logs.get("learning_rate", 0.0)),
                            grad_norm=_float_or_none(logs.get("grad_norm")),
                            elapsed_s=time.perf_counter() - self._t0)
            self.steps.append(ev.to_dict())
            self.bar.set_postfix(loss=f"{ev.loss:.3f}")
            self.bus.emit(ev)
            self._check_stop(control)  # a Stop pressed while this step was reported

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
        val_loss = float(metrics["eval_loss"])
        step = state.global_step
        self.last_eval_step = step
        improved = val_loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_step, self.bad_evals = val_loss, step, 0
            if self.cfg.eval.early_stopping_patience:
                self.best_state = _snapshot_trainable(model)
        else:
            self.bad_evals += 1
        extra = {name: fn(model, self.tok) for name, fn in self.evaluators.items()}
        metrics_flat = {k2: v2 for k, v in extra.items()
                        for k2, v2 in (v.items() if isinstance(v, dict) else [(k, v)])}
        ev = EvalLogged(step=step, val_loss=val_loss, perplexity=math.exp(min(val_loss, 50)),
                        best_val_loss=self.best_val_loss, best_step=self.best_step,
                        elapsed_s=time.perf_counter() - self._t0, metrics=metrics_flat)
        self.evals.append(ev.to_dict())
        self.bus.emit(ev)
        self._emit_samples(model, step)
        patience = self.cfg.eval.early_stopping_patience
        if patience and self.bad_evals >= patience:
            self.status = "early_stopped"
            control.should_training_stop = True

    def _emit_samples(self, model, step: int) -> None:
        if not self.sample_rows or model is None:
            return
        answers = generate_answers(model, self.tok, [r["messages"] for r in self.sample_rows],
                                   max_new_tokens=self.cfg.eval.sample_max_new_tokens)
        rows = [{"question": r["messages"][-2]["content"],
                 "expected": r["messages"][-1]["content"], "answer": a.text,
                 "stopped": a.stopped} for r, a in zip(self.sample_rows, answers)]
        ev = SamplesLogged(step=step, samples=rows)
        self.samples.append(ev.to_dict())
        self.bus.emit(ev)

    def evaluate_now(self, trainer) -> None:
        """Run the trainer's evaluation outside its schedule (step 0, the last step)."""
        trainer.evaluate()

    def restore_best(self, model) -> None:
        """With early stopping, end on the best weights seen, not the last."""
        if self.best_state is not None and self.cfg.eval.early_stopping_patience:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in self.best_state:
                        p.copy_(self.best_state[name])

    def partial_final(self) -> dict:
        losses = [s["loss"] for s in self.steps]
        last_eval = self.evals[-1] if self.evals else {}
        return {"steps": self.step, "train_loss": losses[-1] if losses else None,
                "val_loss": (self.best_val_loss if self.best_state is not None
                             else last_eval.get("val_loss")),
                "first_val_loss": self.evals[0]["val_loss"] if self.evals else None,
                "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                "best_step": self.best_step, "restored_best": self.best_state is not None,
                "step_time_s": statistics.median(self.step_times) if self.step_times else None}

    def close(self) -> None:
        self.bar.close()


def _snapshot_trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _float_or_none(x) -> float | None:
    return None if x is None else float(x)

