"""Supervised tasks generated from a seed: every size, disjoint splits, chat-shaped rows.

A row is ``{"messages": [...], "meta": {...}}``: the last message is the assistant's
answer; ``meta`` carries what an evaluator needs to score it (the expected answer).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError

Row = dict


@dataclass
class Splits:
    """Train / validation / test rows of one task; no example appears in two splits."""

    train: list[Row]
    validation: list[Row]
    test: list[Row]


def _chat(question: str, answer: str, **meta) -> Row:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}],
            "meta": {"answer": answer, **meta}}


def arithmetic(rng: random.Random) -> Row:
    """A word problem with one checkable number."""
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    item = rng.choice(["apples", "books", "coins", "marbles", "stamps", "pencils"])
    name = rng.choice(["Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Goran", "Hana"])
    if rng.random() < 0.5:
        q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        ans = a + b
    else:
        a, b = max(a, b), min(a, b)
        q = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
        ans = a - b
    return _chat(q, f"The answer is {ans}.", number=ans)


TASKS: dict[str, Callable[[random.Random], Row]] = {"arithmetic": arithmetic}


def make_task(name: str, n: int, seed: int = 0, val_fraction: float = 0.2,
              test_fraction: float = 0.2) -> Splits:
    """Generate ``n`` distinct examples of a task and split them without overlap."""
    if name not in TASKS:
        raise ConfigError("data.task", name, "one of " + ", ".join(map(repr, TASKS)),
                          "Or give data.path to a JSONL file of your own.")
    if not 10 <= n <= 5000:
        raise ConfigError("n", n, "a number >= 10 and <= 5000")
    rng, seen, rows = random.Random(seed), set(), []
    attempts = 0
    while len(rows) < n:
        row = TASKS[name](rng)
        key = row["messages"][0]["content"]
        attempts += 1
        if key not in seen:
            seen.add(key)
            rows.append(row)
        elif attempts > 50 * n:
            raise ConfigError("n", n, f"at most {len(rows)} distinct {name} examples")
    n_val, n_test = max(1, int(n * val_fraction)), max(1, int(n * test_fraction))
    return Splits(train=rows[n_val + n_test:], validation=rows[:n_val],
                  test=rows[n_val:n_val + n_test])
