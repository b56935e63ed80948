"""The proxy reward a policy run optimises: the one its ``rl.reward`` names."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .prompts import Prompt
from .rewards import LengthProxyReward, RewardFunction

_LEARNED: dict[str, Any] = {}  # trained reward models by their config: one per process
_LEARNED_LOCK = threading.Lock()


def make_proxy(cfg, prompts: Sequence[Prompt]) -> RewardFunction:
    """The proxy reward ``cfg.rl.reward`` names (``cfg``: a resolved ``RunConfig`` with an
    ``rl`` section). The learned one is trained on first use (``train_reward_model``, about
    a minute on a CPU) and kept for the process."""
    if cfg.rl.reward == "length_proxy":
        return LengthProxyReward(prompts)
    from .reward_model import RewardModelConfig, train_reward_model

    rm_cfg = RewardModelConfig(model=cfg.model, p_longer=cfg.rl.labeller_p_longer,
                               seed=cfg.seed, preset=cfg.preset).resolved()
    key = json.dumps(asdict(rm_cfg), sort_keys=True)
    with _LEARNED_LOCK:
        if key not in _LEARNED:
            _LEARNED[key] = train_reward_model(rm_cfg)
        return _LEARNED[key]
