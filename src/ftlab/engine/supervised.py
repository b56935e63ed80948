"""Supervised fine-tuning: the trainer part of a run without an ``rl`` section.

One path for all five methods: ftlab tokenizes the chats itself (prompt masked, end-of-turn
learned, see ``data/formats.py``), applies the method (``methods.py``, PEFT underneath) and
hands the batches to transformers' ``Trainer``. The lifecycle (``lifecycle.py``) does the
rest; this part adds the validation schedule, the evaluators, early stopping and the
final figures (three validation losses named apart).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from ..arguments import schedule, trainer_arguments
from ..config import RunConfig
from ..data import Splits, corrupt_formats, encode, load_splits
from ..evaluate.loss import loss_tail
from ..memory import breakdown
from ..methods import apply_method
from ..models import accepts_logits_to_keep, choose_placement, load_model, resolve_source
from .callbacks import EarlyStopping, Evaluations, StepEvents
from .distributed import per_device, world_size
from .part import TrainerPart

__all__ = ["SupervisedPart", "build_model", "load_splits", "tokenize_splits"]


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


class Collator:
    """Right-pads a batch (transformers' ``DataCollatorForSeq2Seq``) and, where the model
    allows it, adds ``logits_to_keep`` and ``shift_labels`` (``evaluate.loss.loss_tail``):
    the model's own loss then comes from the logits of the answers' positions only, the
    same number, without the output layer's work over the prompt (a fifth of the model's
    work per position; the system prompt alone is 20 tokens)."""

    def __init__(self, tok, tail: bool) -> None:
        from transformers import DataCollatorForSeq2Seq

        self.pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
        self.tail = tail

    def __call__(self, rows: list[dict]) -> dict:
        batch = self.pad(rows)
        if self.tail:
            first, batch["shift_labels"] = loss_tail(batch["labels"])
            batch["logits_to_keep"] = batch["labels"].shape[1] - first
        return batch


def _step0_in_train() -> dict:
    """Under a launcher the step-0 evaluation is the Trainer's own (``eval_on_start``),
    inside ``train()``: an ``evaluate()`` before it marks the model prepared, unwrapped, and
    ``train()`` then never wraps it in DistributedDataParallel, so the processes would train
    apart, never sharing a gradient (accelerate 1.16, transformers 5.23)."""
    return {"eval_on_start": True} if world_size() > 1 else {}


class SupervisedPart(TrainerPart):
    """transformers' ``Trainer`` on batches ftlab tokenized: evaluate at step 0, train, and
    measure again the model the run returns (the best one after early stopping)."""

    def prepare(self) -> None:
        cfg = self.cfg
        self.label = f"{cfg.method.name} training"
        self.splits = load_splits(cfg)
        self.model, self.tokenizer = build_model(cfg)
        self.train_rows, self.val_rows = tokenize_splits(cfg, self.splits, self.tokenizer)

    def callbacks(self, bus, run_dir: Path) -> tuple[list, list]:
        cfg = self.cfg
        self.evaluations = Evaluations(bus, self.tokenizer, self.splits, cfg, self.evaluators,
                                       self.splits.validation[: cfg.eval.samples or 0],
                                       cfg.eval.sample_max_new_tokens, run_dir)
        self.evals, self.samples = self.evaluations.evals, self.evaluations.samples
        patience = cfg.eval.early_stopping_patience
        self.early = EarlyStopping(patience) if patience else None
        return [self.evaluations], [self.early] if self.early else []

    def build(self, callbacks, run_dir: Path):
        from transformers import PrinterCallback, Trainer, TrainingArguments

        cfg, t = self.cfg, self.cfg.train
        batch = per_device(t.batch_size)  # the global batch over the launched processes
        args = trainer_arguments(
            TrainingArguments, output_dir=str(run_dir), max_steps=t.max_steps,
            batch_size=batch, learning_rate=t.learning_rate, seed=cfg.seed,
            placement=self.placement, per_device_eval_batch_size=batch,
            eval_strategy="steps", eval_steps=cfg.eval.every, remove_unused_columns=False,
            prediction_loss_only=True, report_to=t.report_to, **_step0_in_train(),
            **schedule(t))
        collator = Collator(self.tokenizer, tail=accepts_logits_to_keep(self.model))
        trainer = Trainer(model=self.model, args=args, train_dataset=self.train_rows,
                          eval_dataset=self.val_rows, data_collator=collator,
                          callbacks=list(callbacks))
        trainer.remove_callback(PrinterCallback)  # our events and progress bar report instead
        return trainer

    def run(self, trainer) -> None:
        evals = self.evaluations
        if not _step0_in_train():
            trainer.evaluate()  # step 0: where the model starts
        trainer.train()
        restored = self.early is not None and self.early.restored
        if restored or evals.last_full_step != trainer.state.global_step:
            evals.force_full = True  # measure the model this run returns
            trainer.evaluate()

    def ending(self) -> str | None:
        return "early_stopped" if self.early is not None and self.early.triggered else None

    def final(self, step: int, events: StepEvents) -> dict:
        """The run's final figures; the three validation losses are named apart."""
        evals, early = self.evaluations, self.early
        losses = [s["loss"] for s in events.steps]
        full = [e for e in evals.evals if e.get("full", True)]
        return {
            "steps": step,
            "train_loss": losses[-1] if losses else None,
            "first_val_loss": evals.evals[0]["val_loss"] if evals.evals else None,
            "last_val_loss": evals.last_val_loss,  # at the last evaluation during training
            "best_val_loss": None if math.isinf(evals.best_val_loss) else evals.best_val_loss,
            "best_step": evals.best_step,
            "final_val_loss": evals.evals[-1]["val_loss"] if evals.evals else None,  # returned
            "restored_best": bool(early and early.restored),
            "first_metrics": full[0]["metrics"] if full else {},
            "final_metrics": full[-1]["metrics"] if full else {},
            "step_time_s": statistics.median(events.step_times) if events.step_times else None,
        }

    def figures(self, trainer) -> dict:
        seq_len = max(len(r["input_ids"]) for r in self.train_rows)
        return {"memory_breakdown": breakdown(self.model, per_device(self.cfg.train.batch_size),
                                              seq_len).to_dict()}  # one process's

    def returned_model(self, trainer):
        return self.model
