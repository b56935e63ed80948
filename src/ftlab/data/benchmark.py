"""The broad capability benchmark: 320 multiple-choice items over five areas.

Narrow fine-tuning can quietly cost a model what it knew; this set measures that, before
and after. Hand-written items (science, commonsense, world facts) live in
``files/benchmark.jsonl``; the rest are generated here from hand-written lists with a
fixed seed, so the benchmark is the same on every machine and nothing is downloaded.
Scoring needs no generation: ``ftlab.evaluate.benchmark`` compares the model's
log-likelihood of each choice.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources

AREAS = ("world_knowledge", "science", "arithmetic", "commonsense", "language")

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Japan": "Tokyo", "China": "Beijing", "Russia": "Moscow", "Egypt": "Cairo",
    "Greece": "Athens", "Portugal": "Lisbon", "Ireland": "Dublin", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen",
    "Austria": "Vienna", "Poland": "Warsaw", "Hungary": "Budapest", "Kenya": "Nairobi",
    "Peru": "Lima", "Argentina": "Buenos Aires", "Mexico": "Mexico City",
    "Canada": "Ottawa", "Australia": "Canberra", "India": "New Delhi",
    "Thailand": "Bangkok", "South Korea": "Seoul", "Turkey": "Ankara",
    "the United Kingdom": "London", "the United States": "Washington, D.C.",
    "the Netherlands": "Amsterdam", "Belgium": "Brussels", "Cuba": "Havana",
    "Indonesia": "Jakarta",
}
ANTONYMS = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "up": "down",
    "open": "closed", "light": "dark", "old": "young", "early": "late", "rich": "poor",
    "full": "empty", "wet": "dry", "hard": "soft", "loud": "quiet", "strong": "weak",
    "begin": "end", "win": "lose", "high": "low", "thick": "thin", "clean": "dirty",
}
PLURALS = {
    "child": "children", "mouse": "mice", "foot": "feet", "tooth": "teeth", "man": "men",
    "woman": "women", "goose": "geese", "box": "boxes", "city": "cities", "knife": "knives",
    "leaf": "leaves", "baby": "babies", "bus": "buses", "person": "people", "fish": "fish",
    "sheep": "sheep", "wolf": "wolves", "dish": "dishes", "potato": "potatoes", "ox": "oxen",
}
PAST_TENSES = {
    "go": "went", "eat": "ate", "see": "saw", "run": "ran", "write": "wrote", "take": "took",
    "swim": "swam", "buy": "bought", "think": "thought", "sing": "sang", "drink": "drank",
    "fly": "flew", "teach": "taught", "catch": "caught", "give": "gave", "speak": "spoke",
    "begin": "began", "drive": "drove", "sleep": "slept", "bring": "brought",
    "find": "found", "tell": "told", "sit": "sat", "stand": "stood",
}


@dataclass(frozen=True)
class MCItem:
    """A question with choices; ``answer`` is the index of the right one."""

    area: str
    question: str
    choices: tuple[str, ...]
    answer: int


def _item(rng: random.Random, area: str, question: str, right: str,
          wrong: list[str]) -> MCItem:
    choices = [right, *wrong]
    rng.shuffle(choices)
    return MCItem(area, question, tuple(choices), choices.index(right))


def _from_table(rng: random.Random, area: str, table: dict[str, str], question: str,
                n_wrong: int = 3) -> list[MCItem]:
    values = sorted(set(table.values()))
    out = []
    for key, right in table.items():
        wrong = rng.sample([v for v in values if v != right], n_wrong)
        out.append(_item(rng, area, question.format(key), right, wrong))
    return out


def _arithmetic(rng: random.Random, n: int = 64) -> list[MCItem]:
    # Small operands; distractors are off by a few, as a careless adder would be.
    out: list[MCItem] = []
    seen: set[str] = set()
    while len(out) < n:
        op = ("+", "-", "*")[len(out) % 3]
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        if op == "-":
            a, b = max(a, b) + 1, min(a, b)
        if op == "*":
            a, b = rng.randint(2, 9), rng.randint(2, 9)
        right = a + b if op == "+" else a - b if op == "-" else a * b
        word = {"+": "plus", "-": "minus", "*": "times"}[op]
        offsets = rng.sample([-10, -3, -2, -1, 1, 2, 3, 10], 3)
        wrong = [str(right + d) for d in offsets if right + d >= 0]
        while len(wrong) < 3:
            wrong.append(str(right + 10 + len(wrong)))
        question = f"What is {a} {word} {b}?"
        if question not in seen:  # every item asks something new
            seen.add(question)
            out.append(_item(rng, "arithmetic", question, str(right), wrong))
    return out


def _hand_written(rng: random.Random) -> list[MCItem]:
    text = resources.files("ftlab.data").joinpath("files/benchmark.jsonl").read_text("utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [_item(rng, r["area"], r["question"], r["answer"], r["wrong"]) for r in rows]


def load_benchmark(seed: int = 0) -> list[MCItem]:
    """All items, in a fixed order (the seed only shuffles the choices' positions)."""
    rng = random.Random(seed)
    items = _hand_written(rng)
    items += _from_table(rng, "world_knowledge", CAPITALS, "What is the capital of {}?")
    items += _arithmetic(rng)
    items += _from_table(rng, "language", ANTONYMS, 'What is the opposite of "{}"?')
    items += _from_table(rng, "language", PLURALS, 'What is the plural of "{}"?')
    items += _from_table(rng, "language", PAST_TENSES, 'What is the past tense of "{}"?')
    return items
