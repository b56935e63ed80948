"""Format validity: does each output have the shape the task asks for, and stop cleanly?

Three checks per output, all needed: it *parses* as the task requires (a bare JSON object,
"The answer is N.", one label), it *stops* with the end-of-turn token within the token
budget, and it is *clean* of stray template tokens ("###", "[INST]", "<|im_start|>",
"Question:" ...). These are exactly what training on wrongly formatted data breaks.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..generation import Answer
from .checks import stray_markers
from .result import EvalResult, mean
from .task import PARSERS, answer_rows


def check_format(task: str, answer: Answer) -> dict[str, bool]:
    """The three format checks of one answer (unknown tasks: any non-empty text parses)."""
    parse = PARSERS.get(task, lambda t: bool(t.strip()))
    return {"parses": parse(answer.text), "stops": answer.stopped,
            "clean": not stray_markers(answer.raw)}


def format_validity(model, tok, rows: Sequence[dict], task: str, *,
                    answers: Sequence[Answer] | None = None, max_new_tokens: int | None = None,
                    batch_size: int | None = None, progress: bool = True,
                    keep: int = 8) -> EvalResult:
    """Share of outputs passing all three checks; failing outputs are kept for display."""
    if answers is None:
        answers = answer_rows(model, tok, rows, task, max_new_tokens, batch_size, progress)
    checks = [check_format(task, a) for a in answers]
    failures = [{"prompt": r["messages"][-2]["content"], "output": a.raw,
                 "failed": [k for k, ok in c.items() if not ok],
                 "stray": stray_markers(a.raw)}
                for r, a, c in zip(rows, answers, checks) if not all(c.values())]
    breakdown = {k: mean(c[k] for c in checks) for k in ("parses", "stops", "clean")}
    return EvalResult("format", mean(all(c.values()) for c in checks), len(checks), breakdown,
                      examples=failures[:keep], extra={"task": task})
