"""Read a user's JSONL dataset, checking every row before any training starts."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DatasetError
from .formats import check_row


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file: chats (``messages``) or ``prompt``/``completion`` pairs."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(str(p), "no such file", "Check data.path.")
    rows = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p.name}, line {lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(where, f"not valid JSON ({e.msg} at column {e.colno})",
                               "Each line must be one JSON object.") from None
        if isinstance(raw, dict) and "messages" not in raw and {"prompt", "completion"} <= set(raw):
            if not (isinstance(raw["prompt"], str) and isinstance(raw["completion"], str)):
                raise DatasetError(where, "'prompt' and 'completion' must be strings", "")
            raw = {"messages": [{"role": "user", "content": raw["prompt"]},
                                {"role": "assistant", "content": raw["completion"]}],
                   "meta": {"answer": raw["completion"]}}
        check_row(raw, where)
        raw.setdefault("meta", {"answer": raw["messages"][-1]["content"]})
        rows.append(raw)
    if not rows:
        raise DatasetError(str(p), "the file holds no rows", "Add one JSON object per line.")
    return rows
