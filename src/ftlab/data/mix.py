"""General instruction data mixed into a narrow task's training rows: the replay mitigation.

A model fine-tuned only on one narrow task (a one-word sentiment label) learns that every
answer is that short form, and forgets how to answer anything else. Mixing some general
instruction rows back into training (``data.mix_share``) keeps the behaviour alive: the
model keeps seeing requests answered in full sentences while it learns the task.

The rows live in ``files/general_instructions.jsonl``: 64 hand-written requests (explain,
describe, list, summarise, rewrite, a short poem ...) with answers of 10-60 words. They
share no topic, wording or verifiable constraint with the instruction probes
(``ftlab.data.probes``: no capitals-only, lowercase-only, word-count, JSON, keyword,
end-phrase, paragraph-count, start-word or comma instructions), so a probe that passes
after mixing passes because the model kept its general behaviour, not because it was
trained on the probe. The mixed rows are training rows only: validation and test rows stay
the task's own.
"""

from __future__ import annotations

import functools
import json
import random
from importlib import resources

from ..errors import ConfigError
from .tasks import Row, Splits

GENERAL_FILE = "files/general_instructions.jsonl"


@functools.lru_cache(maxsize=1)
def _general_json() -> tuple[str, ...]:
    text = resources.files("ftlab.data").joinpath(GENERAL_FILE).read_text("utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


def general_rows() -> list[Row]:
    """Every general instruction row (fresh copies: callers may change them)."""
    return [json.loads(line) for line in _general_json()]


def mixed_rows(rows: list[Row], share: float, seed: int = 0) -> list[Row]:
    """``rows`` with ``share`` of them replaced by general rows, in a seeded order.

    The number of training rows stays ``len(rows)``: ``round(share * len(rows))`` task rows
    (the last ones) give way to general rows drawn without replacement (cycling through
    the file when more are asked for than it holds). ``share`` 0 returns ``rows`` as given.
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise ConfigError("data.mix_share", share, "a number >= 0 and < 1",
                          "0 trains on the task alone; 0.5 replaces half its rows.")
    k = round(share * len(rows))
    if k == 0:
        return list(rows)
    rng = random.Random(f"mix-{seed}")
    pool = general_rows()
    picked: list[Row] = []
    while len(picked) < k:
        rng.shuffle(pool)
        picked += pool[:k - len(picked)]
    out = list(rows[:len(rows) - k]) + picked
    rng.shuffle(out)
    return out


def with_general(splits: Splits, share: float, seed: int = 0) -> Splits:
    """The same splits with general rows mixed into training only (``mixed_rows``)."""
    if not share:
        return splits
    return Splits(train=mixed_rows(splits.train, share, seed), validation=splits.validation,
                  test=splits.test)
