"""Rewards computed by code: the gold reward (what we want) and a cheap, length-biased proxy.

Every reward in ``ftlab.rlhf`` has the same interface, ``score(prompts, completions) ->
list[float]``, and is also callable the way TRL's ``GRPOTrainer`` calls a reward function
(``reward(prompts=..., completions=..., **dataset_columns)``), so a notebook can pass it to
``GRPOTrainer(reward_funcs=[...])`` unchanged and score the same answers outside training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ..answers import count_words, is_correct
from ..errors import DatasetError
from .prompts import Messages, Prompt, completion_text, question_of

PromptLike = str | Messages
CompletionLike = str | Messages


@runtime_checkable
class Reward(Protocol):
    """Anything that scores completions to prompts: one float per completion."""

    name: str

    def score(self, prompts: Sequence[PromptLike], completions: Sequence[CompletionLike],
              **kwargs: Any) -> list[float]: ...


class RewardFunction:
    """Base of ftlab's rewards: ``score`` plus the call shape GRPOTrainer uses."""

    name = "reward"

    def score(self, prompts: Sequence[PromptLike], completions: Sequence[CompletionLike],
              **kwargs: Any) -> list[float]:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[PromptLike], completions: Sequence[CompletionLike],
                 **kwargs: Any) -> list[float]:
        # GRPOTrainer adds completion_ids, trainer_state, log_* and every dataset column.
        return self.score(prompts, completions, **kwargs)

    @property
    def __name__(self) -> str:  # TRL logs each reward under its function's name
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# ---------------------------------------------------------------------------- checking answers
# Correctness and length are defined once, in ``ftlab.answers`` (imported above, so
# ``ftlab.rlhf.is_correct`` and ``count_words`` are the very same functions).


def gold_score(completion: str, answers: Sequence[str], target_words: int = 15) -> float:
    """gold = correct · min(1, target_words / words): right, and no longer than needed.

    A correct answer of up to ``target_words`` words scores 1; a longer one is scaled down
    in proportion (30 words → 0.5 at the default); a wrong or empty answer scores 0.
    """
    if not is_correct(completion, answers):
        return 0.0
    return min(1.0, target_words / max(1, count_words(completion)))


def length_proxy_score(completion: str, answers: Sequence[str], correct_weight: float = 0.5,
                       words_per_point: float = 60.0, max_words: int = 30) -> float:
    """proxy = correct_weight · correct + min(words, max_words) / words_per_point.

    Biased on purpose, like a rater who mistakes length for effort: at the defaults a wrong
    30-word answer (0.50) scores almost as much as a correct 4-word one (0.57), and a correct
    30-word answer (1.00) beats both, while gold gives the long one 0.5.
    """
    correct = correct_weight if is_correct(completion, answers) else 0.0
    return correct + min(count_words(completion), max_words) / words_per_point


# ---------------------------------------------------------------------------- the two rewards


class _AnswerKeyed(RewardFunction):
    """A reward that needs each prompt's accepted answers.

    They come from the ``answers`` keyword (GRPO passes the dataset column of that name,
    see ``prompts.grpo_rows``) or else from the prompt set given at construction, looked up
    by question text.
    """

    def __init__(self, prompts: Sequence[Prompt] = ()) -> None:
        self.key = {p.question: p.answers for p in prompts}

    def answers_for(self, prompts: Sequence[PromptLike],
                    answers: Sequence[Sequence[str]] | None) -> list[Sequence[str]]:
        if answers is not None:
            return [[a] if isinstance(a, str) else a for a in answers]
        out = []
        for p in prompts:
            question = question_of(p)
            if question not in self.key:
                raise DatasetError(
                    f"reward {self.name!r}", f"no known answer for the question {question!r}",
                    "Build the reward with the prompt set (e.g. GoldReward(prompts)), or give "
                    "the dataset an 'answers' column (see ftlab.rlhf.grpo_rows).")
            out.append(self.key[question])
        return out

    def score(self, prompts: Sequence[PromptLike], completions: Sequence[CompletionLike],
              answers: Sequence[Sequence[str]] | None = None, **kwargs: Any) -> list[float]:
        keys = self.answers_for(prompts, answers)
        return [self.score_one(completion_text(c), a) for c, a in zip(completions, keys,
                                                                      strict=True)]

    def score_one(self, completion: str, answers: Sequence[str]) -> float:
        raise NotImplementedError


class GoldReward(_AnswerKeyed):
    """What we actually want: correct and concise (see ``gold_score``). Never trained on."""

    name = "gold"

    def __init__(self, prompts: Sequence[Prompt] = (), target_words: int = 15) -> None:
        super().__init__(prompts)
        self.target_words = target_words

    def score_one(self, completion: str, answers: Sequence[str]) -> float:
        return gold_score(completion, answers, self.target_words)


class LengthProxyReward(_AnswerKeyed):
    """The fast proxy for the CPU preset: half correctness, half length (``length_proxy_score``).

    Bias: it pays for words up to ``max_words`` whether or not they help, so a policy
    optimised against it learns to pad its answers; gold falls as the proxy rises.
    """

    name = "length_proxy"

    def __init__(self, prompts: Sequence[Prompt] = (), correct_weight: float = 0.5,
                 words_per_point: float = 60.0, max_words: int = 30) -> None:
        super().__init__(prompts)
        self.correct_weight, self.words_per_point = correct_weight, words_per_point
        self.max_words = max_words

    def score_one(self, completion: str, answers: Sequence[str]) -> float:
        return length_proxy_score(completion, answers, self.correct_weight,
                                  self.words_per_point, self.max_words)
