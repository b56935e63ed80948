"""Task score on held-out rows: is the content of the answer right?

Content and format are scored apart: here the answer is read leniently (the last number,
the first JSON object anywhere), so a model that knows the answer but wraps it in chatter
still scores; ``format.py`` judges the wrapping. Each task's declaration
(``ftlab.data.tasks.Task``) brings its scorer (text, meta) -> {part: correct?} and its token
budget; the breakdown is the share correct per part (per field for JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from ..data.tasks import OWN, TASKS, task_for
from ..generation import Answer, generate_answers
from .result import EvalResult, mean

# Read from the task declarations (ftlab.data.tasks.TASKS), for the modules that look a task
# up by name: the token budget of each task, and the strict shape it asks for.
MAX_NEW_TOKENS: dict[str, int] = {n: t.max_new_tokens for n, t in TASKS.items()}
DEFAULT_MAX_NEW_TOKENS = OWN.max_new_tokens
PARSERS: dict[str, Callable[[str], bool]] = {n: t.parse for n, t in TASKS.items()}


def score_answer(task: str, text: str, meta: dict) -> dict[str, bool]:
    """Per-part correctness of one answer; unknown tasks (own JSONL) use exact match."""
    return task_for(task).score(text, meta)


def answer_rows(model, tok, rows: Sequence[dict], task: str, max_new_tokens: int | None = None,
                batch_size: int | None = None, progress: bool = True) -> list[Answer]:
    """Greedy answers to the rows' prompts with the task's token budget."""
    budget = max_new_tokens or task_for(task).max_new_tokens
    return generate_answers(model, tok, [r["messages"] for r in rows], max_new_tokens=budget,
                            batch_size=batch_size, progress=progress)


def task_score(model, tok, rows: Sequence[dict], task: str, *,
               answers: Sequence[Answer] | None = None, max_new_tokens: int | None = None,
               batch_size: int | None = None, progress: bool = True,
               keep: int = 8) -> EvalResult:
    """Share of test rows answered correctly (mean over parts: fields for JSON tasks)."""
    if answers is None:
        answers = answer_rows(model, tok, rows, task, max_new_tokens, batch_size, progress)
    per_row, examples = [], []
    for row, ans in zip(tqdm(rows, desc="scoring", disable=not progress, leave=False), answers):
        parts = score_answer(task, ans.text, row["meta"])
        per_row.append(parts)
        if len(examples) < keep and not all(parts.values()):
            examples.append({"prompt": row["messages"][-2]["content"], "output": ans.raw,
                             "expected": row["meta"]["answer"], "parts": parts})
    keys = list(per_row[0]) if per_row else []
    breakdown = {k: mean(p.get(k, False) for p in per_row) for k in keys}
    score = mean(mean(p.values()) for p in per_row)
    return EvalResult("task", score, len(per_row), breakdown, examples=examples,
                      extra={"task": task})
