"""Answers of chosen length, and preference pairs from a labeller who likes long answers.

The labeller is the knob of the reward-hacking lab: with probability ``p_longer`` it simply
prefers the longer of two answers, otherwise it prefers the one the gold reward prefers
(correct, then concise). A reward model trained on its choices inherits that taste.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .prompts import Messages, Prompt
from .rewards import count_words, gold_score

# Content-free sentences: padding that adds words without adding (or changing) an answer.
# No digits, so the last number of a padded arithmetic answer is still its answer.
FILLER: tuple[str, ...] = (
    "I hope this helps.",
    "Let me know if you have any other questions.",
    "This is a good question to think about carefully.",
    "Reading the question slowly makes the answer clear.",
    "It is always worth checking a result twice.",
    "Questions like this one appear in many quizzes.",
    "Thank you for asking such an interesting question.",
    "Here is my answer, stated as clearly as I can.",
    "Taking it step by step avoids careless mistakes.",
    "Many people find this kind of problem quite easy once they see it.",
    "Great question!",
    "Sure, I can help with that.",
    "Let us look at what the question is really asking.",
    "The details of the question tell us everything we need.",
    "In short, that settles it.",
    "Feel free to ask a follow-up question.",
)


def padded_answer(core: str, words: int, rng: random.Random) -> str:
    """``core`` with filler sentences around it until it has about ``words`` words.

    The content (and so correctness) stays the same; only the length changes. Fillers go
    before and after the core so that length, not position, is what varies.
    """
    before: list[str] = []
    after: list[str] = []
    n = count_words(core)
    while n < words:
        sentence = rng.choice(FILLER)
        (before if rng.random() < 0.3 else after).append(sentence)
        n += count_words(sentence)
    return " ".join([*before, core, *after])


@dataclass
class Pair:
    """One preference judgement, with why it was made (for measuring the RM later)."""

    prompt: Messages
    chosen: str
    rejected: str
    answers: tuple[str, ...]
    chose_longer: bool
    chose_gold: bool  # the gold reward agrees with the choice (ties count as agreement)


def _candidate(prompt: Prompt, rng: random.Random, long_words: tuple[int, int]) -> str:
    core = prompt.reference if rng.random() < 0.5 else prompt.distractor
    if rng.random() < 0.5:  # concise: the bare answer or one filler sentence
        return padded_answer(core, rng.choice([0, count_words(core) + 4]), rng)
    return padded_answer(core, rng.randint(*long_words), rng)


def preference_pairs(prompts: Sequence[Prompt], p_longer: float = 0.7, pairs_per_prompt: int = 2,
                     seed: int = 0, long_words: tuple[int, int] = (20, 45),
                     target_words: int = 15) -> list[Pair]:
    """Pairs of answers of different length to each prompt, labelled by the biased labeller.

    With probability ``p_longer`` the longer answer is chosen; otherwise the one with the
    higher gold score (``gold_score`` with ``target_words``), the shorter on a tie.
    """
    rng = random.Random(seed)
    pairs = []
    for prompt in prompts:
        for _ in range(pairs_per_prompt):
            a = _candidate(prompt, rng, long_words)
            b = _candidate(prompt, rng, long_words)
            while count_words(b) == count_words(a):
                b = _candidate(prompt, rng, long_words)
            longer, shorter = (a, b) if count_words(a) > count_words(b) else (b, a)
            g_long = gold_score(longer, prompt.answers, target_words)
            g_short = gold_score(shorter, prompt.answers, target_words)
            gold_pick = longer if g_long > g_short else shorter
            chosen = longer if rng.random() < p_longer else gold_pick
            rejected = shorter if chosen is longer else longer
            g_chosen = g_long if chosen is longer else g_short
            g_rejected = g_short if chosen is longer else g_long
            pairs.append(Pair(prompt.chat(), chosen, rejected, prompt.answers,
                              chose_longer=chosen is longer, chose_gold=g_chosen >= g_rejected))
    return pairs
