"""Task score on held-out rows: is the content of the answer right?

Content and format are scored apart: here the answer is read leniently (the last number,
the first JSON object anywhere), so a model that knows the answer but wraps it in chatter
still scores; ``format.py`` judges the wrapping. Each task brings a scorer (text, meta) ->
{part: correct?}; the breakdown is the share correct per part (per field for JSON).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from ..answers import gives_number, same_value
from ..data.tasks import EXTRACTION_KEYS, SENTIMENT_LABELS
from ..generation import Answer, generate_answers
from .checks import find_json_object, parse_json_only
from .result import EvalResult, mean

# Tokens an answer may take: enough for the trained format and for a chatty base model.
MAX_NEW_TOKENS: dict[str, int] = {"arithmetic": 48, "extraction": 64, "sentiment": 16}
DEFAULT_MAX_NEW_TOKENS = 64


# What an answer says (its last number, a field's value) is defined once, in ftlab.answers.
def _score_arithmetic(text: str, meta: dict) -> dict[str, bool]:
    return {"correct": gives_number(text, meta["number"])}


def _score_extraction(text: str, meta: dict) -> dict[str, bool]:
    obj = find_json_object(text) or {}
    return {k: same_value(obj.get(k, ""), v) for k, v in meta["fields"].items()}


def _score_exact(text: str, meta: dict) -> dict[str, bool]:
    return {"exact": same_value(text, meta["answer"])}


SCORERS: dict[str, Callable[[str, dict], dict[str, bool]]] = {
    "arithmetic": _score_arithmetic, "extraction": _score_extraction, "sentiment": _score_exact,
}

# The strict shape each task asks for (used by format validity).
PARSERS: dict[str, Callable[[str], bool]] = {
    "arithmetic": lambda t: re.fullmatch(r"The answer is -?\d+\.", t.strip()) is not None,
    "extraction": lambda t: isinstance(v := parse_json_only(t), dict)
    and set(v) == set(EXTRACTION_KEYS),
    "sentiment": lambda t: t.strip().rstrip(".").lower() in SENTIMENT_LABELS,
}


def score_answer(task: str, text: str, meta: dict) -> dict[str, bool]:
    """Per-part correctness of one answer; unknown tasks (own JSONL) use exact match."""
    return SCORERS.get(task, _score_exact)(text, meta)


def answer_rows(model, tok, rows: Sequence[dict], task: str, max_new_tokens: int | None = None,
                batch_size: int | None = None, progress: bool = True) -> list[Answer]:
    """Greedy answers to the rows' prompts with the task's token budget."""
    budget = max_new_tokens or MAX_NEW_TOKENS.get(task, DEFAULT_MAX_NEW_TOKENS)
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
