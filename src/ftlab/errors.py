"""Errors that a learner reads: each names what was wrong, what is allowed and what to do."""

from __future__ import annotations

from typing import Any


class FtlabError(Exception):
    """Base class: a problem ftlab can explain in one message (no traceback needed)."""

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing the traceback: the message is the whole story.
        return [f"{type(self).__name__}: {self}"]


class ConfigError(FtlabError, ValueError):
    """A config field holds a value outside what is allowed."""

    def __init__(self, field: str, value: Any, expected: str, fix: str = "") -> None:
        self.field, self.value, self.expected, self.fix = field, value, expected, fix
        msg = f"{field} = {value!r} is not allowed: expected {expected}."
        super().__init__(f"{msg} {fix}".strip())


class DatasetError(FtlabError, ValueError):
    """A dataset file or row does not have the shape ftlab needs."""

    def __init__(self, where: str, problem: str, fix: str = "") -> None:
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}. {fix}".strip())


class ModelNotFoundError(FtlabError, OSError):
    """A model spec names nothing that can be loaded here."""


class MissingDependencyError(FtlabError, ImportError):
    """An optional package that this feature needs is not installed."""


class TrainingError(FtlabError, RuntimeError):
    """Training stopped on an error; the run folder keeps what was measured before it."""
