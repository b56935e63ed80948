"""Supervised tasks generated from a seed: every size, disjoint splits, chat-shaped rows.

A row is ``{"messages": [...], "meta": {...}}``: the last message is the assistant's
answer; ``meta`` carries what an evaluator needs to score it (the expected answer).

Three tasks, each chosen for what it teaches:

- ``arithmetic``: word problems with one checkable number ("The answer is 42.").
- ``extraction``: a sentence in, a JSON object with fixed keys out. Format-sensitive:
  one stray token and the output no longer parses.
- ``sentiment``: a review in, one word out ("positive" / "negative"). Narrow and
  learned in a few steps, so a model trained on it over-specialises: the lab's
  instruction probes and broad benchmark show what it forgot.

Each task is declared once, as a ``Task`` in ``TASKS``: how its rows are generated, how an
answer's content is scored (read leniently), the strict answer shape it asks for, and how
many tokens an answer may take. Facts (names, cities, products) are written here by hand;
nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..answers import find_json_object, gives_number, parse_json_only, same_value
from ..errors import ConfigError

Row = dict

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Goran", "Hana", "Ivan", "Jia",
         "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomas",
         "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Carla", "Dmitri",
         "Esther", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Luis", "Maya", "Nils"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Denver", "Madrid", "Hanoi", "Cairo",
          "Dublin", "Quito", "Seoul", "Accra", "Munich", "Perth", "Toronto", "Krakow", "Bogota",
          "Chennai", "Manila", "Tunis", "Porto", "Vienna", "Austin", "Lagos", "Riga", "Santiago",
          "Helsinki", "Bristol", "Montreal"]
JOBS = ["nurse", "teacher", "baker", "pilot", "engineer", "farmer", "lawyer", "chemist",
        "painter", "plumber", "librarian", "dentist", "chef", "journalist", "architect",
        "electrician", "designer", "pharmacist", "mechanic", "translator"]
ITEMS = ["apples", "books", "coins", "marbles", "stamps", "pencils", "cookies", "shells",
         "stickers", "eggs"]


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
    """A one-step word problem (add, take away or multiply) with one checkable number."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    op = rng.choice(["add", "sub", "mul"])
    if op == "add":
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        ans = a + b
    elif op == "sub":
        a, b = sorted((rng.randint(2, 60), rng.randint(2, 40)), reverse=True)
        q, ans = f"{name} has {a} {item} and gives away {b}. How many {item} are left?", a - b
    else:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        q, ans = f"{name} has {a} bags with {b} {item} in each. How many {item} is that?", a * b
    return _chat(q, f"The answer is {ans}.", number=ans, op=op)


EXTRACTION_KEYS = ("name", "age", "city", "job")
_PERSON_TEMPLATES = [
    "{name} is a {age}-year-old {job} who lives in {city}.",
    "Born {age} years ago, {name} now works as a {job} in {city}.",
    "In {city}, {name} ({age}) has worked as a {job} for years.",
    "Meet {name}: {job}, {age} years old, based in {city}.",
    "{name}, aged {age}, moved to {city} to work as a {job}.",
]


def extraction(rng: random.Random) -> Row:
    """A sentence about a person in, a JSON object with four fixed keys out."""
    fields = {"name": rng.choice(NAMES), "age": rng.randint(19, 78),
              "city": rng.choice(CITIES), "job": rng.choice(JOBS)}
    sentence = rng.choice(_PERSON_TEMPLATES).format(**fields)
    q = ("Extract the person's name, age, city and job from the sentence. Reply with only a "
         'JSON object with the keys "name", "age", "city" and "job".\n'
         f"Sentence: {sentence}")
    return _chat(q, json.dumps(fields), fields=fields)


SENTIMENT_LABELS = ("positive", "negative")
_PRODUCTS = ["blender", "laptop", "hotel room", "pizza", "headphones", "novel", "backpack",
             "coffee", "phone case", "movie", "tent", "bicycle", "lamp", "sofa", "museum tour",
             "train ride", "keyboard", "jacket", "restaurant", "video game"]
_ADJECTIVES = {
    "positive": ["great", "wonderful", "excellent", "comfortable", "reliable", "delicious",
                 "beautiful", "fantastic", "sturdy", "charming", "fast", "lovely"],
    "negative": ["terrible", "awful", "broken", "uncomfortable", "unreliable", "bland",
                 "ugly", "disappointing", "flimsy", "noisy", "slow", "dirty"],
}
_REVIEW_TEMPLATES = {
    "positive": ["The {p} was {a} and I would buy it again.", "What a {a} {p}! {i} recommended.",
                 "{i} happy: the {p} is {a}.", "Our {p} turned out {a}; worth every cent.",
                 "I loved this {p}, it is {a}."],
    "negative": ["The {p} was {a} and I want a refund.", "What a {a} {p}. {i} not recommended.",
                 "{i} unhappy: the {p} is {a}.", "Our {p} turned out {a}; a waste of money.",
                 "I regret this {p}, it is {a}."],
}
_INTENSIFIERS = ["Very", "Really", "Truly", "Completely"]


def sentiment(rng: random.Random) -> Row:
    """A product review in, a one-word label out: narrow, fixed reply style."""
    label = rng.choice(SENTIMENT_LABELS)
    review = rng.choice(_REVIEW_TEMPLATES[label]).format(
        p=rng.choice(_PRODUCTS), a=rng.choice(_ADJECTIVES[label]), i=rng.choice(_INTENSIFIERS))
    q = f"Review: {review}\nIs this review positive or negative?"
    return _chat(q, label, label=label)


# -- reading an answer -----------------------------------------------------------------
# Content and format are judged apart: a scorer reads the answer leniently (the last number,
# the first JSON object anywhere), so a model that knows the answer but wraps it in chatter
# still scores; a parser checks the strict shape the task trains (format validity). What an
# answer says (its last number, a field's value) is defined once, in ftlab.answers.
def score_exact(text: str, meta: dict) -> dict[str, bool]:
    """The whole answer against the expected one (``same_value``): labels, own data."""
    return {"exact": same_value(text, meta["answer"])}


def _score_arithmetic(text: str, meta: dict) -> dict[str, bool]:
    return {"correct": gives_number(text, meta["number"])}


def _score_extraction(text: str, meta: dict) -> dict[str, bool]:
    obj = find_json_object(text) or {}
    return {k: same_value(obj.get(k, ""), v) for k, v in meta["fields"].items()}


def _is_arithmetic_answer(text: str) -> bool:
    return re.fullmatch(r"The answer is -?\d+\.", text.strip()) is not None


def _is_extraction_answer(text: str) -> bool:
    value = parse_json_only(text)
    return isinstance(value, dict) and set(value) == set(EXTRACTION_KEYS)


def _is_sentiment_answer(text: str) -> bool:
    return text.strip().rstrip(".").lower() in SENTIMENT_LABELS


# -- the registry ----------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One task, declared once: what every module that trains on it or scores it needs.

    ``generate(rng)`` makes one row; ``score(text, meta)`` says per part whether an answer's
    content is right ({part: correct?}, per field for JSON); ``parse(text)`` whether it has
    the strict shape the task trains; ``max_new_tokens`` is what an answer may take: enough
    for the trained format and for a chatty base model. Calling a task generates a row.
    """

    name: str
    generate: Callable[[random.Random], Row] | None
    score: Callable[[str, dict], dict[str, bool]]
    parse: Callable[[str], bool]
    max_new_tokens: int

    def __call__(self, rng: random.Random) -> Row:
        if self.generate is None:
            raise ConfigError("data.task", self.name, "a generated task: "
                              + ", ".join(map(repr, TASKS)))
        return self.generate(rng)


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("arithmetic", arithmetic, _score_arithmetic, _is_arithmetic_answer, 48),
    Task("extraction", extraction, _score_extraction, _is_extraction_answer, 64),
    Task("sentiment", sentiment, score_exact, _is_sentiment_answer, 16),
)}

# Rows of your own (a JSONL file, scored as "own"): exact match, any non-empty answer.
OWN = Task("own", None, score_exact, lambda t: bool(t.strip()), 64)


def task_for(name: str) -> Task:
    """The task's declaration; any other name (rows of your own) gets ``OWN``'s."""
    return TASKS.get(name, OWN)


HELD_OUT: dict[str, int] = {"validation": 200, "test": 400}
"""Rows per split in a task's held-out pool. The pool is drawn first from the seed, so it
is the same whatever training size is asked for, and no training row is ever in it."""


def _distinct_rows(name: str, seed: int, n: int) -> list[Row]:
    """The first ``n`` rows of the task's seeded stream with distinct prompts."""
    rng, seen, rows = random.Random(seed), set(), []
    attempts = 0
    while len(rows) < n:
        row = TASKS[name](rng)
        key = row["messages"][0]["content"]  # the prompt: distinct prompts, disjoint splits
        attempts += 1
        if key not in seen:
            seen.add(key)
            rows.append(row)
        elif attempts > 50 * n:
            limit = len(rows) - sum(HELD_OUT.values())
            raise ConfigError("data.size", n - sum(HELD_OUT.values()),
                              f"at most {limit} training examples of {name!r}",
                              "The task has no more distinct prompts.")
    return rows


def make_task(name: str, n: int, seed: int = 0, n_val: int | None = None,
              n_test: int | None = None) -> Splits:
    """``n`` training rows of a task, and its held-out rows, without overlap.

    Validation and test rows come from a held-out pool fixed by the seed (``HELD_OUT``):
    runs of every size are measured on the same rows, and a training row at one size is
    never a held-out row at another. Training rows follow the pool in the same seeded
    stream, so a larger size adds rows to a smaller one's.
    """
    if name not in TASKS:
        raise ConfigError("data.task", name, "one of " + ", ".join(map(repr, TASKS)),
                          "Or give data.path to a JSONL file of your own.")
    if isinstance(n, bool) or not isinstance(n, int) or not 10 <= n <= 5000:
        raise ConfigError("data.size", n, "a whole number >= 10 and <= 5000")
    n_val = HELD_OUT["validation"] if n_val is None else n_val
    n_test = HELD_OUT["test"] if n_test is None else n_test
    for field_name, value, most in (("data.val_size", n_val, HELD_OUT["validation"]),
                                    ("n_test", n_test, HELD_OUT["test"])):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ConfigError(field_name, value, f"a whole number >= 1 and <= {most}",
                              "Held-out rows come from a fixed pool of that size.")
    rows = _stream(name, seed, sum(HELD_OUT.values()) + n)
    pool_val = HELD_OUT["validation"]
    return Splits(train=rows[sum(HELD_OUT.values()):], validation=rows[:n_val],
                  test=rows[pool_val:pool_val + n_test])


def held_out(name: str, seed: int = 0) -> Splits:
    """The task's whole held-out pool for a seed (no training rows)."""
    rows = _stream(name, seed, sum(HELD_OUT.values()))
    return Splits(train=[], validation=rows[:HELD_OUT["validation"]],
                  test=rows[HELD_OUT["validation"]:])


@functools.lru_cache(maxsize=32)
def _cached_stream(name: str, seed: int, n: int) -> tuple[str, ...]:
    return tuple(json.dumps(r) for r in _distinct_rows(name, seed, n))


def _stream(name: str, seed: int, n: int) -> list[Row]:
    # cached as JSON so that callers can never mutate a shared row
    return [json.loads(r) for r in _cached_stream(name, seed, n)]
