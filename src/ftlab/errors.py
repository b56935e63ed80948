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
        shown = repr(value)
        if len(shown) > 80:  # a pasted 50 MB string or a 400-digit number: show its start
            shown = f"{shown[:60]}... ({len(shown)} characters)"
        msg = f"{field} = {shown} is not allowed: expected {expected}."
        super().__init__(f"{msg} {fix}".strip())


class ConfigFileError(FtlabError, ValueError):
    """A run config file (``RunConfig.from_file``, ``ftlab train --config``) that cannot be
    read, written or turned into a run: the message starts with the file (with the line and
    column of a syntax error), so the learner knows where to look before what to change.

    ``field`` names the knob at fault when the file parsed but a value did not pass
    (``train.max_steps``); it is None for a problem with the file as a whole.
    """

    def __init__(self, path: object, problem: str, fix: str = "", line: int | None = None,
                 column: int | None = None, field: str | None = None) -> None:
        self.path, self.problem, self.fix = path, problem, fix
        self.line, self.column, self.field = line, column, field
        where = str(path) if str(path).isprintable() else repr(str(path))
        if len(where) > 200:  # a generated path: its start is enough to find it
            where = f"{where[:120]}... ({len(where)} characters)"
        if line is not None:
            where += f", line {line}" + ("" if column is None else f", column {column}")
        problem = problem.strip()
        stop = "" if problem.endswith((".", "?", "!")) else "."  # a knob's message has its own
        super().__init__(f"{where}: {problem}{stop} {fix}".strip())


class DatasetError(FtlabError, ValueError):
    """A dataset file or row does not have the shape ftlab needs.

    ``line`` is the 1-based line of the file where the problem is (None for the file as a
    whole: missing, a folder, empty).
    """

    def __init__(self, where: str, problem: str, fix: str = "", line: int | None = None) -> None:
        self.where, self.problem, self.fix, self.line = where, problem, fix, line
        super().__init__(f"{where}: {problem}. {fix}".strip())


class EnvPathError(FtlabError):
    """A path ftlab was given (an environment variable or an argument) cannot be used."""

    def __init__(self, variable: str, path: object, problem: str, fix: str) -> None:
        self.variable, self.path, self.problem, self.fix = variable, path, problem, fix
        shown = repr(str(path))
        if len(shown) > 200:  # a pasted or generated path: its start is enough to find it
            shown = f"{shown[:120]}... ({len(str(path))} characters)"
        super().__init__(f"{variable} = {shown} {problem}. {fix}".strip())


class RunFolderError(FtlabError):
    """A run folder is damaged: the message names the folder and what is damaged."""

    def __init__(self, path: object, problems: list[str]) -> None:
        self.path, self.problems = path, list(problems)
        super().__init__(f"Run folder {path} is damaged: " + "; ".join(problems) + ". "
                         "Delete the folder, or train the run again.")


class RunFolderWarning(UserWarning):
    """A run folder is readable but partly damaged (a cut metrics line, a lost result)."""


class ModelNotFoundError(FtlabError, OSError):
    """A model spec names nothing that can be loaded here."""


class ModelDamagedError(FtlabError, OSError):
    """A model folder is there but a file in it cannot be read (cut while copying or saving,
    a disk that filled up): the message names the file and what to do."""


class MissingDependencyError(FtlabError, ImportError):
    """An optional package that this feature needs is not installed."""


class DoesNotFitError(FtlabError, ValueError):
    """A run whose estimated peak memory exceeds what its device has free, refused before any
    model is built: the message names both numbers and the changes that would fit.

    ``needed`` and ``free`` are bytes; ``changes`` the settings that would make it fit.
    """

    def __init__(self, device: str, needed: int, free: int, detail: str,
                 changes: list[str]) -> None:
        self.device, self.needed, self.free, self.changes = device, needed, free, list(changes)
        gib = 2**30
        fix = ("Change one of these: " + "; ".join(changes) + "." if changes else
               "Lower train.batch_size and data.max_length (and rl.generations for GRPO), "
               "or use 'qlora'.")
        super().__init__(
            f"This run will not fit on {device}: it needs about {needed / gib:.1f} GiB "
            f"({detail}) and {device} has {free / gib:.1f} GiB free. {fix} (Set "
            "FTLAB_SKIP_MEMORY_CHECK=1 to start it anyway.)")


class TrainingError(FtlabError, RuntimeError):
    """Training stopped on an error; the run folder keeps what was measured before it.

    ``run`` is that run (status ``failed``, every metric so far), when a folder was written.
    """

    def __init__(self, message: str, run: Any = None) -> None:
        super().__init__(message)
        self.run = run


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or the kernel's stop button) ended a run; ``run`` is what it measured so far.

    A ``KeyboardInterrupt``, so code that catches interrupts still does; its folder is
    marked ``interrupted`` and keeps every metric logged before the interrupt.
    """

    def __init__(self, message: str, run: Any = None) -> None:
        super().__init__(message)
        self.run = run

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def writable_folder(root, variable: str, fix: str):
    """``root`` created and checked writable, else an ``EnvPathError`` naming ``variable``
    (the setting that chose the folder) and the ``fix``."""
    import tempfile

    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise EnvPathError(variable, root, f"cannot be written ({why})", fix) from None
    return root
