"""How an exercise is checked: cases, feedback, and the exception a grader counts.

A check runs the learner's function on hand-made and random cases and compares it with
ftlab's own implementation of the same notion (the one definition the lessons use). It
never shows a raw traceback and never prints the reference code: a mistake or an exception
in the learner's code becomes feedback (the case, what was expected, a hint).

A failed check raises :class:`CheckFailed`. In Jupyter it shows only its feedback (IPython
renders ``_render_traceback_`` instead of a traceback); to a grader it is an error in the
check cell, which nbgrader counts as zero points. A passed check prints one line to stdout
(never stderr: nbgrader counts any stderr output in a graded cell as a failure).
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

STUB_HINT = ("Your function returned None: its body is still the `...` placeholder (or it "
             "has no `return`). Replace the `...` line with your code and run both cells again.")


class CheckFailed(Exception):
    """A check that did not pass: the feedback, without a traceback."""

    def __init__(self, exercise: str, lines: list[str]) -> None:
        self.exercise, self.lines = exercise, lines
        super().__init__("\n".join(lines))

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"\x1b[31m{line}\x1b[0m" if i == 0 else line for i, line in enumerate(self.lines)]


@dataclass
class Case:
    """One input for the learner's function, with a name a learner can read."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    show: str = ""  # how the inputs are shown in feedback (default: repr of args, shortened)


def short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...)"


def call(fn: Callable, case: Case) -> tuple[Any, BaseException | None, str]:
    """Run the learner's function on one case: (result, exception or None, captured output)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return fn(*case.args, **case.kwargs), None, out.getvalue()
    except Exception as exc:  # a learner's bug is feedback, not a crash
        return None, exc, out.getvalue()


def close(a: Any, b: Any, tol: float = 1e-6) -> bool:
    """Numbers, sequences and tensors compared with a tolerance (relative and absolute)."""
    try:
        import torch

        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
            return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def function_check(exercise: str, title: str, fn: Any, cases: Iterable[Case],
                   expected: Callable[[Case], Any], *, compare: Callable = close,
                   hint: Callable[[Case, Any, Any], str] | str = "",
                   describe: Callable[[Any], str] = short) -> None:
    """Compare ``fn`` with the reference on every case; print one line or raise CheckFailed."""
    head = f"Exercise {exercise} ({title})"
    if fn is None or fn is Ellipsis or not callable(fn):
        raise CheckFailed(exercise, [f"✗ {head}: there is no function to check yet.",
                                     "Run the cell that defines it first (the one above)."])
    t0 = time.perf_counter()
    cases = list(cases)
    for case in cases:
        try:
            want = expected(case)
        except Exception as exc:  # a bug of the check itself: still no raw traceback
            raise CheckFailed(exercise, [f"✗ {head}: the check itself failed ({type(exc).__name__}:"
                                         f" {exc}). Your code is not at fault; please report it."]
                              ) from None
        got, exc, _ = call(fn, case)
        shown = case.show or ", ".join(short(a, 80) for a in case.args)
        if exc is not None:
            if isinstance(exc, NotImplementedError):
                raise CheckFailed(exercise, [f"✗ {head}: not written yet.",
                                             "Replace the placeholder with your code, then run "
                                             "the cell and this check again."])
            raise CheckFailed(exercise, [
                f"✗ {head}: your function raised {type(exc).__name__}: {exc}",
                f"  on the case {case.name!r}: {shown}",
                f"  expected it to return {describe(want)}",
                "  Hint: run your function on these inputs in a new cell to see where it breaks."])
        if got is None and want is not None:
            raise CheckFailed(exercise, [f"✗ {head}: not yet.", STUB_HINT])
        ok = False
        with contextlib.suppress(Exception):
            ok = bool(compare(got, want))
        if not ok:
            text = hint(case, got, want) if callable(hint) else hint
            raise CheckFailed(exercise, [
                f"✗ {head}: not yet. {len(cases)} cases, this one differs:",
                f"  case {case.name!r}: {shown}",
                f"  expected: {describe(want)}",
                f"  yours:    {describe(got)}",
                *([f"  Hint: {text}"] if text else [])])
    print(f"✓ Exercise {exercise} ({title}): all {len(cases)} cases agree with ftlab's own "
          f"implementation ({time.perf_counter() - t0:.1f} s).")


class _ReturnedNone(Exception):
    """The learner's function returned None (its body is still the placeholder)."""


def _guard(fn: Callable) -> Callable:
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        if out is None:
            raise _ReturnedNone
        return out
    return wrapped


Property = tuple[str, Callable[[Callable], tuple[bool, str]]]


def property_check(exercise: str, title: str, fn: Any, properties: Iterable[Property]) -> None:
    """A design exercise: ``fn`` must have every property (each returns (ok, what went wrong))."""
    head = f"Exercise {exercise} ({title})"
    if fn is None or fn is Ellipsis or not callable(fn):
        raise CheckFailed(exercise, [f"✗ {head}: there is no function to check yet.",
                                     "Run the cell that defines it first (the one above)."])
    properties = list(properties)
    for name, prop in properties:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                ok, detail = prop(_guard(fn))
        except _ReturnedNone:
            raise CheckFailed(exercise, [f"✗ {head}: not yet.", STUB_HINT]) from None
        except NotImplementedError:
            raise CheckFailed(exercise, [f"✗ {head}: not written yet.",
                                         "Replace the placeholder with your code."]) from None
        except Exception as exc:
            raise CheckFailed(exercise, [
                f"✗ {head}: your function raised {type(exc).__name__}: {exc}",
                f"  while checking: {name}",
                "  Hint: try it on the inputs the task names, in a new cell."]) from None
        if not ok:
            lines = [f"✗ {head}: not yet. This requirement does not hold:", f"  {name}"]
            if detail == "stub":
                lines.append(STUB_HINT)
            elif detail:
                lines.append(f"  {detail}")
            raise CheckFailed(exercise, lines)
    print(f"✓ Exercise {exercise} ({title}): all {len(properties)} requirements hold.")
