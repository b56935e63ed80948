"""RLHF: a prompt set with known answers, a gold reward, and proxies that can be hacked.

- ``prompts``: questions with checkable answers (arithmetic and hand-written facts).
- ``rewards``: the ``Reward`` interface, the gold reward and the fast length proxy.
- ``pairs``: padded answers and preference pairs from a labeller who likes length.
- ``reward_model``: the learned proxy, trained with TRL's RewardTrainer.
- ``proxy``: the proxy a run's ``rl.reward`` names (``make_proxy``).
- ``bias``: each reward against answer length, as numbers and as a figure.
- ``watch``: a policy's greedy answers to held-out questions, scored (``GoldWatch``).

Every reward is a GRPO reward function as it stands: ``GRPOTrainer(reward_funcs=[proxy])``.
"""

from .bias import DEFAULT_LENGTHS, LengthBias, length_bias, length_bias_figure
from .pairs import FILLER, Pair, padded_answer, preference_pairs
from .prompts import (
    FACTS,
    HELDOUT_FACTS,
    MORE_FACTS,
    Prompt,
    completion_text,
    heldout_prompts,
    make_prompts,
    policy_rows,
    question_of,
    substance_prompts,
)
from .proxy import make_proxy
from .reward_model import (
    RM_PRESETS,
    LearnedReward,
    RewardModelConfig,
    RewardModelReport,
    load_reward_base,
    split_prompts,
    train_reward_model,
)
from .rewards import (
    GoldReward,
    LengthProxyReward,
    Reward,
    RewardFunction,
    count_words,
    gold_score,
    is_correct,
    length_proxy_score,
)
from .watch import AnswerWatch, GoldWatch, heldout_questions

__all__ = [
    "DEFAULT_LENGTHS", "FACTS", "FILLER", "HELDOUT_FACTS", "MORE_FACTS", "RM_PRESETS",
    "AnswerWatch",
    "GoldReward", "GoldWatch", "heldout_questions", "LearnedReward",
    "LengthBias", "LengthProxyReward", "Pair", "Prompt", "Reward", "RewardFunction",
    "RewardModelConfig", "RewardModelReport", "completion_text", "count_words", "gold_score",
    "heldout_prompts", "is_correct", "length_bias", "length_bias_figure",
    "length_proxy_score",
    "load_reward_base", "make_prompts", "make_proxy", "padded_answer", "policy_rows",
    "preference_pairs", "question_of", "substance_prompts",
    "split_prompts", "train_reward_model",
]
