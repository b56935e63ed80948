"""The benchmark's questions answered in words: what the model *says*, not what it finds likely.

``ftlab.evaluate.benchmark`` reads the model's probabilities: of the choices, which reply
is most likely. That view survives a model that no longer answers questions at all (after
a narrow fine-tune a model may still rank "Paris" above "Berlin" while it only ever says
"positive"). This module asks the same items as a user would, with the choices listed, and
scores the generated answer by code: it must name the right choice and no wrong one.

A choice is named as ``ftlab.answers`` defines it: a number is the answer's last number
("The answer is 19." names 19, not 9), a word or phrase is a whole-word match ("Paris",
not "Parisian"). Listing every choice names more than one and scores nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..answers import as_number, has_word, last_number
from ..data.benchmark import MCItem, load_benchmark
from ..generation import Answer, generate_answers
from .result import EvalResult, mean, wilson_interval

MAX_NEW_TOKENS = 24  # "The capital of Peru is Lima." fits; a chatty answer is read up to here


def mc_prompt(item: MCItem) -> str:
    """The question with its choices, as a user would ask it."""
    return (f"{item.question}\nChoose one of: {'; '.join(item.choices)}.\n"
            "Reply with the correct choice.")


def names_choice(text: str, choice: str) -> bool:
    """Does the answer name this choice? A number must be its last number; words match
    whole (``ftlab.answers``)."""
    value = as_number(choice)
    if value is not None:
        return last_number(text) == value
    return has_word(text, choice)


def picked(item: MCItem, text: str) -> int | None:
    """The index of the one choice the answer names, or None (none, or several)."""
    named = [j for j, c in enumerate(item.choices) if names_choice(text, c)]
    return named[0] if len(named) == 1 else None


def score_generated(items: Sequence[MCItem], answers: Sequence[Answer], *,
                    keep: int = 8) -> EvalResult:
    """Share of items whose answer names the right choice and no other, per area and
    overall (with a 95% interval); ``extra["correct"]`` is the per-item outcome."""
    by_area: dict[str, list[bool]] = defaultdict(list)
    correct, examples = [], []
    for item, ans in zip(items, answers, strict=True):
        ok = picked(item, ans.text) == item.answer
        correct.append(ok)
        by_area[item.area].append(ok)
        if not ok and len(examples) < keep:
            examples.append({"area": item.area, "question": item.question,
                             "expected": item.choices[item.answer], "output": ans.text})
    n = len(correct)
    return EvalResult("benchmark_generated", mean(correct), n,
                      {a: mean(v) for a, v in sorted(by_area.items())},
                      chance=mean(1 / len(it.choices) for it in items),
                      ci95=wilson_interval(sum(correct), n), examples=examples,
                      extra={"correct": correct,
                             "n_per_area": {a: len(v) for a, v in sorted(by_area.items())}})


def run_generated_mc(model, tok, items: Sequence[MCItem] | None = None, *,
                     max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int | None = None,
                     progress: bool = True) -> EvalResult:
    """Greedy answers to the items' questions (choices listed), scored by code."""
    items = list(load_benchmark() if items is None else items)
    chats = [[{"role": "user", "content": mc_prompt(it)}] for it in items]
    answers = generate_answers(model, tok, chats, max_new_tokens=max_new_tokens,
                               batch_size=batch_size, progress=progress)
    result = score_generated(items, answers)
    result.extra["answers"] = [a.text for a in answers]
    return result
