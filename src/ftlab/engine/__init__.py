"""The engine: one run lifecycle (``lifecycle.py``) and a thin part per trainer.

From a notebook cell to the optimizer step: ``train`` (``lifecycle.py``) picks the part —
``supervised.py`` (transformers' ``Trainer``, all five methods) or ``policy.py`` (TRL's
``GRPOTrainer``) — and runs it; ``callbacks.py`` turns the trainer's hooks into events.
"""

from ..runs import Run, TrainResult
from .callbacks import Evaluator, StopFlag
from .lifecycle import replay, train
from .supervised import build_model, load_splits, tokenize_splits

__all__ = ["Evaluator", "Run", "StopFlag", "TrainResult", "build_model", "load_splits",
           "replay", "tokenize_splits", "train"]
