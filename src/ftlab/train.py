"""Supervised fine-tuning: ``train(config)`` from a config to a measured run.

One path for all five methods: ftlab tokenizes the chats itself (prompt masked, end-of-turn
learned, see ``data/formats.py``) and hands them to transformers' ``Trainer``. ftlab owns
no training loop: the callbacks in ``callbacks.py`` (one concern each) turn the trainer's
hooks into ftlab events, evaluations, early stopping, the Stop button and a progress bar.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from .callbacks import (
    EarlyStopping,
    Evaluations,
    Evaluator,
    ProgressBar,
    ShareCpus,
    StepEvents,
    StopFlag,
    StopOnFlag,
)
from .config import RunConfig
from .data import Splits, corrupt_formats, encode, make_task, read_jsonl
from .data.mix import with_general
from .errors import DatasetError, RunInterrupted, TrainingError
from .events import (
    EvalLogged,
    EventBus,
    Listener,
    RunEnded,
    RunStarted,
    SamplesLogged,
    StepLogged,
)
from .memory import PeakMemory, breakdown
from .methods import apply_method, param_report
from .models import choose_placement, load_model, resolve_source
from .runs import Run, RunWriter, TrainResult, cache_key, find_run, writable_runs_root

__all__ = ["Evaluator", "Run", "StopFlag", "TrainResult", "build_model", "load_splits",
           "replay", "tokenize_splits", "train"]


def load_splits(config: RunConfig) -> Splits:
    """The run's examples: a generated task, or the user's JSONL file split 60/20/20."""
    d = config.data
    if d.path is None:
        return with_general(make_task(d.task, d.size, seed=config.seed, n_val=d.val_size),
                            d.mix_share, config.seed)  # general rows mixed in (mitigation)
    rows = read_jsonl(d.path)
    if len(rows) < 3:
        raise DatasetError(d.path, f"only {len(rows)} rows; train, validation and test need "
                           "at least one each", "Add more rows.")
    random.Random(config.seed).shuffle(rows)
    n_val = n_test = max(1, len(rows) // 5)
    return with_general(Splits(train=rows[n_val + n_test:], validation=rows[:n_val],
                               test=rows[n_val:n_val + n_test]), d.mix_share, config.seed)


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
    evaluators: Mapping[str, Evaluator] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    runs_dir: str | Path | None = None,
    progress: bool = True,
    reuse: bool = False,
) -> Run:
    """Fine-tune the model that ``config`` describes; return the run (history, final figures,
    the trained model).

    ``on_event`` listeners receive ``RunStarted``, ``StepLogged``, ``EvalLogged``,
    ``SamplesLogged`` and ``RunEnded`` as they happen. Setting ``stop`` ends the run after
    the current step (status ``stopped``). ``evaluators`` (``name -> fn(model, tok, ctx)``)
    add namespaced measurements to every evaluation; ``callbacks`` are extra transformers
    ``TrainerCallback``s. Every run writes a folder under ``runs_dir`` (``ftlab.runs``).
    ``reuse=True`` returns an earlier run of the same resolved config and evaluators from
    its folder instead of training (its events are replayed to the listeners).

    A config with an ``rl`` section is a policy-optimisation run (``ftlab.rl``): same
    arguments, events and folder.
    """
    cfg = config.resolved()
    writable_runs_root(runs_dir)  # a bad FTLAB_RUNS is said now, not after the model loads
    evaluators = dict(evaluators or {})
    listeners = on_event if isinstance(on_event, list) else [on_event] if on_event else []
    if reuse:
        cached = find_run(cfg, runs_dir, evaluators)
        if cached is not None:
            return replay(cached, listeners)
    if cfg.rl is not None:
        from .rl import train_policy

        return train_policy(cfg, listeners=listeners, stop=stop, evaluators=evaluators,
                            callbacks=callbacks, runs_dir=runs_dir, progress=progress)
    return _train_supervised(cfg, listeners, stop, evaluators, callbacks, runs_dir, progress)


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


def _train_supervised(cfg, listeners, stop, evaluators, extra_callbacks, runs_dir,
                      progress) -> Run:
    from transformers import set_seed

    placement = choose_placement(cfg.device, cfg.dtype)
    set_seed(cfg.seed)
    splits = load_splits(cfg)
    model, tok = build_model(cfg)
    train_rows, val_rows = tokenize_splits(cfg, splits, tok)

    bus = EventBus(listeners)
    writer = RunWriter(cfg, placement.device, runs_dir)
    bus.subscribe(lambda e: writer.log(e.to_dict()) if e.kind != "start" else None)
    params = param_report(model, cfg.method.name)
    seq_len = max(len(r["input_ids"]) for r in train_rows)
    total = cfg.train.max_steps
    events = StepEvents(bus, total)
    evals = Evaluations(bus, tok, splits, cfg, evaluators,
                        splits.validation[: cfg.eval.samples or 0],
                        cfg.eval.sample_max_new_tokens)
    stopper = StopOnFlag(stop or StopFlag())
    bar = ProgressBar(total, f"{cfg.method.name} training", progress)
    patience = cfg.eval.early_stopping_patience
    early = EarlyStopping(patience) if patience else None
    callbacks = [ShareCpus(), events, evals, stopper, bar, *([early] if early else []),
                 *extra_callbacks]
    bus.emit(RunStarted(run_dir=str(writer.path), config=cfg.to_dict(), total_steps=total,
                        params=params.to_dict()))
    trainer = _make_trainer(cfg, placement, model, tok, train_rows, val_rows, callbacks,
                            writer.path)
    key = cache_key(cfg, evaluators)
    t0 = time.perf_counter()

    def record(status: str, error: str | None = None, **more) -> dict:
        final = _final(trainer.state.global_step, events, evals, early, **more)
        writer.finish(status, {"status": status, "final": final, "cache_key": key},
                      error=error)
        bus.emit(RunEnded(status=status, step=trainer.state.global_step, error=error,
                          final=final))
        return final

    try:
        with PeakMemory(placement.device) as mem:
            trainer.evaluate()  # step 0: where the model starts
            trainer.train()
            restored = early is not None and early.restored
            if restored or evals.last_full_step != trainer.state.global_step:
                evals.force_full = True  # measure the model this run returns
                trainer.evaluate()
    except BaseException as e:  # noqa: BLE001 - record every ending, then re-raise
        import signal

        interrupted = isinstance(e, KeyboardInterrupt)
        status = "interrupted" if interrupted else "failed"
        msg = _explain(e, cfg, trainer.state.global_step)
        # A second Ctrl-C must not cut the record of the first: the folder gets its status,
        # result.json and every metric measured so far.
        main = threading.current_thread() is threading.main_thread()
        old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        final: dict = {}
        try:
            final = record(status, msg)
        except Exception as rec_err:  # noqa: BLE001 - a full disk: say so, keep the cause
            msg += f" (The run folder could not be updated: {rec_err}.)"
        finally:
            bar.close()
            writer.close()
            if main:
                signal.signal(signal.SIGINT, old_handler)
        run = Run(path=writer.path, config=cfg, status=status, env=writer.env,
                  steps=events.steps, evals=evals.evals, samples=evals.samples, final=final,
                  error=msg, cache_key=key, model=model, tokenizer=tok, splits=splits)
        if interrupted:
            raise RunInterrupted(f"{msg} Its folder keeps every metric measured so far: "
                                 f"{writer.path}", run) from None
        raise TrainingError(msg, run=run) from e
    bar.close()
    status = ("stopped" if stopper.stopped else
              "early_stopped" if early is not None and early.triggered else "completed")
    final = record(
        status, wall_s=time.perf_counter() - t0, peak_memory_bytes=mem.peak_bytes,
        peak_memory_above_start_bytes=mem.above_baseline_bytes, peak_memory_kind=mem.kind,
        memory_breakdown=breakdown(model, cfg.train.batch_size, seq_len).to_dict(),
        params=params.to_dict(), device=placement.device, dtype=placement.dtype_name)
    if cfg.save_weights:
        _save_weights(model, tok, writer.path / "weights")
    writer.close()
    return Run(path=writer.path, config=cfg, status=status, env=writer.env, steps=events.steps,
               evals=evals.evals, samples=evals.samples, final=final, cache_key=key,
               model=model, tokenizer=tok, splits=splits)


def _final(step: int, events: StepEvents, evals: Evaluations, early: EarlyStopping | None,
           **more: Any) -> dict:
    """The run's final figures; the three validation losses are named apart."""
    losses = [s["loss"] for s in events.steps]
    full = [e for e in evals.evals if e.get("full", True)]
    return {
        "steps": step,
        "train_loss": losses[-1] if losses else None,
        "first_val_loss": evals.evals[0]["val_loss"] if evals.evals else None,
        "last_val_loss": evals.last_val_loss,  # at the last evaluation during training
        "best_val_loss": None if math.isinf(evals.best_val_loss) else evals.best_val_loss,
        "best_step": evals.best_step,
        "final_val_loss": evals.evals[-1]["val_loss"] if evals.evals else None,  # returned model
        "restored_best": bool(early and early.restored),
        "first_metrics": full[0]["metrics"] if full else {},
        "final_metrics": full[-1]["metrics"] if full else {},
        "step_time_s": statistics.median(events.step_times) if events.step_times else None,
        **more,
    }


def _make_trainer(cfg, placement, model, tok, train_rows, val_rows, callbacks, run_dir):
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
                      data_collator=collator, callbacks=list(callbacks))
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
