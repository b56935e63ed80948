"""Measure the learned proxy reward in the CPU preset: train time, held-out accuracy, length bias.

Run: FTLAB_CACHE=... python benchmarks/reward_model.py [--p-longer 0.7] [--preset cpu]
Prints one JSON object; docs/rewards.md quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from ftlab.rlhf import (
    GoldReward,
    LengthProxyReward,
    RewardModelConfig,
    length_bias,
    train_reward_model,
)
from ftlab.rlhf.reward_model import split_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--p-longer", type=float, default=0.7)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--bias-prompts", type=int, default=8)
    a = parser.parse_args()
    cfg = RewardModelConfig(model=a.model, p_longer=a.p_longer, preset=a.preset)
    start = time.perf_counter()
    rm = train_reward_model(cfg)
    total = time.perf_counter() - start
    _, heldout = split_prompts(cfg.resolved())
    prompts = heldout[:a.bias_prompts]
    start_bias = time.perf_counter()
    bias = length_bias([GoldReward(prompts), LengthProxyReward(prompts), rm], prompts)
    r = rm.report
    print(json.dumps({
        "config": vars(rm.config), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "train_time_s": round(r.train_time_s, 1), "train_cpu_s": round(r.train_cpu_s, 1),
        "total_with_heldout_eval_s": round(total, 1), "steps": r.steps,
        "train_pairs": r.train_pairs, "heldout_pairs": r.heldout_pairs,
        "heldout_accuracy": round(r.heldout_accuracy, 3),
        "gold_agreement": round(r.gold_agreement, 3),
        "prefers_longer": round(r.prefers_longer, 3),
        "length_bias_s": round(time.perf_counter() - start_bias, 1),
        "length_bias": {k: {m: round(v, 3) for m, v in d.items()}
                        for k, d in bias.summary().items()},
        "learned_curve_correct": bias.curve("learned_rm", True),
        "learned_curve_wrong": bias.curve("learned_rm", False),
    }, indent=1))


if __name__ == "__main__":
    main()
