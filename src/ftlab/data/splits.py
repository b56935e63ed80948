"""A run's rows: its generated task or the learner's own file, split once, one way."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..errors import DatasetError
from .jsonl import read_jsonl
from .mix import with_general
from .tasks import Splits, make_task

if TYPE_CHECKING:
    from ..config import RunConfig


def load_splits(config: RunConfig) -> Splits:
    """The run's examples: a generated task, or the user's JSONL file split 60/20/20.

    A file's split keeps at most ``data.size`` training rows and ``data.val_size``
    validation rows (when set, as a resolved config has them): the same sizes a generated
    task has, so a file of a million rows trains (and tokenizes) as many rows as the preset
    says, not all of them. The test rows are kept whole; evaluators take their own number."""
    d = config.data
    if d.path is None:
        return with_general(make_task(d.task, d.size, seed=config.seed, n_val=d.val_size),
                            d.mix_share, config.seed)  # general rows mixed in (mitigation)
    rows = read_jsonl(d.path)
    if len(rows) < 3:
        raise DatasetError(d.path, f"only {len(rows)} rows; train, validation and test need "
                           "at least one each", "Add more rows.")
    random.Random(config.seed).shuffle(rows)
    n_val = n_test = max(1, len(rows) // 5)
    train, val = rows[n_val + n_test:], rows[:n_val]
    return with_general(Splits(train=train[:d.size] if d.size else train,
                               validation=val[:d.val_size] if d.val_size else val,
                               test=rows[n_val:n_val + n_test]), d.mix_share, config.seed)
