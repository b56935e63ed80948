"""What one kind of run supplies to the lifecycle (``lifecycle.py``); the rest is shared."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from transformers import TrainerCallback

from ..config import RunConfig
from ..events import EventBus
from ..models import Placement
from .callbacks import Evaluator, StepEvents


class TrainerPart:
    """What one kind of run supplies to the lifecycle; everything else is shared.

    The lifecycle calls, in order: ``prepare`` (data and model, before the run folder
    exists, so a missing model or a bad file leaves no folder), ``callbacks`` (its own, placed
    around the shared ones), ``build`` (the transformers/TRL trainer), ``run`` (inside the
    peak-memory window), then ``ending``, ``final`` and ``figures`` for the record.
    """

    label: str = "training"  # the progress bar's description
    step_metrics: Mapping[str, str] = {}  # trainer log key -> the run's metric name

    def __init__(self, cfg: RunConfig, placement: Placement,
                 evaluators: Mapping[str, Evaluator]) -> None:
        self.cfg, self.placement, self.evaluators = cfg, placement, dict(evaluators)
        self.model = self.tokenizer = self.splits = None
        self.evals: list[dict] = []
        self.samples: list[dict] = []

    def prepare(self) -> None:
        raise NotImplementedError

    def callbacks(self, bus: EventBus, run_dir: Path) -> tuple[list, list]:
        """The part's own callbacks: ``(before, after)`` the Stop flag and progress bar."""
        return [], []

    def build(self, callbacks: list[TrainerCallback], run_dir: Path):
        raise NotImplementedError

    def params(self, trainer) -> dict:
        """Trainable and total parameters of the model being trained."""
        from ..methods import param_report

        return param_report(trainer.model, self.cfg.method.name).to_dict()

    def run(self, trainer) -> None:
        raise NotImplementedError

    def ending(self) -> str | None:
        """A status of the part's own for a run that ended normally (``early_stopped``)."""
        return None

    def final(self, step: int, events: StepEvents) -> dict:
        raise NotImplementedError

    def figures(self, trainer) -> dict:
        """Final figures only a finished run has (memory breakdown, reward name, ...)."""
        return {}

    def returned_model(self, trainer):
        return trainer.model
