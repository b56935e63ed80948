"""What a run tells its listeners while it goes: widgets plot these, run folders store them.

Listeners are plain callables; they are called on the thread that runs ``train()``.
A listener that raises is reported once and then dropped, so a broken plot never kills
a run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    recorded: ClassVar[bool] = True  # written to the run folder (and replayed from it)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "start"
    run_dir: str
    config: dict
    total_steps: int
    params: dict  # ParamReport.to_dict()


@dataclass
class StepLogged(Event):
    kind: ClassVar[str] = "step"
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    grad_norm: float | None
    elapsed_s: float
    metrics: dict = field(default_factory=dict)  # per-step numbers (RL: rewards, KL, length)


@dataclass
class EvalLogged(Event):
    kind: ClassVar[str] = "eval"
    step: int
    val_loss: float
    perplexity: float
    best_val_loss: float
    best_step: int
    elapsed_s: float
    metrics: dict = field(default_factory=dict)  # namespaced: {"probes.score": 0.3, ...}
    full: bool = True  # every evaluator ran (first and final evaluation), not only "always"


@dataclass
class ValLossMeasured(Event):
    """An evaluation's validation loss, as soon as it is known. The evaluators of the same
    evaluation (generation: up to a minute on a CPU before the first step) follow, and its
    ``EvalLogged`` carries both; this lets a live curve show its first point meanwhile.
    Live only: never written to the run folder."""

    kind: ClassVar[str] = "val_loss"
    recorded: ClassVar[bool] = False
    step: int
    val_loss: float


@dataclass
class SamplesLogged(Event):
    kind: ClassVar[str] = "samples"
    step: int
    samples: list  # [{"question", "expected", "answer", "stopped"}]


@dataclass
class RunEnded(Event):
    kind: ClassVar[str] = "end"
    status: str  # completed | stopped | early_stopped | interrupted | failed
    step: int
    error: str | None
    final: dict


Listener = Callable[[Event], Any]


class EventBus:
    """Fan events out to listeners; a failing listener is dropped with one warning."""

    def __init__(self, listeners: list[Listener] | None = None) -> None:
        self.listeners: list[Listener] = list(listeners or [])

    def subscribe(self, fn: Listener) -> None:
        self.listeners.append(fn)

    def emit(self, event: Event) -> None:
        for fn in list(self.listeners):
            try:
                fn(event)
            except Exception as e:  # noqa: BLE001 - a listener must not stop training
                warnings.warn(f"event listener {fn!r} failed and was removed: {e!r}",
                              stacklevel=2)
                self.listeners.remove(fn)
