"""The rewards of the reward-hacking lab: gold is right, the proxies are biased, and the
learned proxy's bias comes from its training pairs (nothing in its code mentions length)."""

from __future__ import annotations

import math
import random

import pytest

from ftlab.errors import ConfigError, DatasetError
from ftlab.rlhf import (
    GoldReward,
    LearnedReward,
    LengthProxyReward,
    Reward,
    RewardModelConfig,
    is_correct,
    length_bias,
    length_bias_figure,
    load_reward_base,
    make_prompts,
    padded_answer,
    policy_rows,
    preference_pairs,
    train_reward_model,
)
from ftlab.rlhf.reward_model import split_prompts

Q = "Ana has 70 apples and gets 6 more. How many apples does Ana have now?"
ANS = ("76",)
CONCISE = "The answer is 76."
VERBOSE = ("Great question! Ana starts with some apples and then receives a few more, so we add "
           "them together carefully and check the result twice. The answer is 76. I hope this "
           "helps, and let me know if you have any other questions.")  # 42 words


def test_correctness_reads_the_last_number_as_a_whole_number():
    assert is_correct(CONCISE, ANS)
    assert is_correct("70 + 6 = 76", ANS)
    assert is_correct("It is 76.0 apples", ANS)
    assert not is_correct("The answer is 176.", ANS)  # a number inside another number
    assert not is_correct("The answer is 7.6", ANS)
    assert not is_correct("The answer is 76.5", ANS)
    assert not is_correct("76 - 70 = 6", ANS)  # the last number is the answer given
    assert not is_correct("", ANS)
    assert is_correct("It is Paris.", ("Paris",))
    assert not is_correct("It is a Parisian city.", ("Paris",))
    assert is_correct("a spider has eight legs", ("8", "eight"))


def test_gold_rewards_correct_and_concise_only():
    gold = GoldReward(target_words=15)
    chat = [{"role": "user", "content": Q}]
    scores = gold.score([chat] * 5, [CONCISE, VERBOSE, "The answer is 75.", "",
                                     "The answer is 176."], answers=[ANS] * 5)
    assert scores[0] == 1.0
    assert len(VERBOSE.split()) == 42 and scores[1] == pytest.approx(15 / 42)
    assert scores[2:] == [0.0, 0.0, 0.0]


def test_length_proxy_pays_for_words_even_when_wrong():
    proxy = LengthProxyReward(correct_weight=0.5, words_per_point=60, max_words=30)
    wrong_long = "The answer is 75. " + " ".join(["indeed"] * 26)  # 30 words, wrong
    s = proxy.score([Q] * 5, [CONCISE, VERBOSE, wrong_long, "", "The answer is 176."],
                    answers=[ANS] * 5)
    assert s[0] == pytest.approx(0.5 + 4 / 60)
    assert s[1] == pytest.approx(1.0)  # 42 words, capped at 30: the maximum
    assert s[2] == pytest.approx(0.5)  # wrong but long ≈ right but short
    assert s[3] == 0.0
    assert s[4] == pytest.approx(4 / 60)
    assert s[1] > s[0]  # the bias: the proxy prefers the verbose correct answer; gold does not


def test_rewards_plug_into_grpo_calls_and_find_answers_by_question():
    prompts = make_prompts(20, seed=3)
    rows = policy_rows(prompts)
    gold = GoldReward(prompts)
    completions = [[{"role": "assistant", "content": p.reference}] for p in prompts]
    # The call GRPOTrainer makes: keywords, extra columns, trainer extras.
    from_columns = gold(prompts=[r["prompt"] for r in rows], completions=completions,
                        completion_ids=[[1]] * 20, answers=[r["answers"] for r in rows],
                        trainer_state=None, log_extra=None, log_metric=None)
    by_lookup = gold.score([p.chat() for p in prompts], [p.reference for p in prompts])
    assert from_columns == by_lookup == [1.0] * 20
    assert gold.__name__ == "gold" and isinstance(gold, Reward)
    with pytest.raises(DatasetError, match="no known answer"):
        GoldReward().score(["What is the capital of Peru?"], ["Lima"])


def test_prompt_set_is_deterministic_and_mixes_facts():
    a, b = make_prompts(40, seed=1), make_prompts(40, seed=1)
    assert a == b and a != make_prompts(40, seed=2)
    assert len({p.question for p in a}) == 40
    assert {p.kind for p in a} == {"arithmetic", "fact"}
    gold = GoldReward(a)
    assert gold.score([p.question for p in a], [p.reference for p in a]) == [1.0] * 40
    assert gold.score([p.question for p in a], [p.distractor for p in a]) == [0.0] * 40
    with pytest.raises(ConfigError):
        make_prompts(5)


def test_padding_changes_length_not_correctness():
    rng = random.Random(0)
    for p in make_prompts(20, seed=0):
        for words in (10, 40):
            text = padded_answer(p.reference, words, rng)
            assert len(text.split()) >= words and is_correct(text, p.answers)
            assert not is_correct(padded_answer(p.distractor, words, rng), p.answers)


@pytest.mark.parametrize("p_longer", [0.0, 0.7, 1.0])
def test_labeller_prefers_longer_answers_with_the_chosen_probability(p_longer):
    pairs = preference_pairs(make_prompts(200, seed=0), p_longer=p_longer, seed=0)
    longer = sum(p.chose_longer for p in pairs) / len(pairs)
    assert all(len(p.chosen.split()) != len(p.rejected.split()) for p in pairs)
    if p_longer == 1.0:
        assert longer == 1.0
    elif p_longer == 0.0:
        assert all(p.chose_gold for p in pairs) and longer < 0.5
    else:
        assert 0.7 < longer < 0.9  # 0.7 by the coin plus gold's own picks of the longer one


def test_config_errors_name_the_knob():
    with pytest.raises(ConfigError, match="p_longer"):
        RewardModelConfig(p_longer=1.5).resolved()
    with pytest.raises(ConfigError, match="preset"):
        RewardModelConfig(preset="tpu").resolved()
    cfg = RewardModelConfig(preset="cpu", max_steps=3).resolved()
    assert cfg.max_steps == 3 and cfg.n_prompts == 60


def test_learned_reward_on_tiny_trains_and_scores_one_float_per_completion():
    rm = train_reward_model(RewardModelConfig(model="tiny", n_prompts=20, max_steps=3,
                                              batch_size=4, preset="cpu"))
    assert isinstance(rm, LearnedReward) and isinstance(rm, Reward)
    assert rm.report.steps == 3 and len(rm.report.log_history) >= 3
    assert all(math.isfinite(e["loss"]) for e in rm.report.log_history if "loss" in e)
    prompts = make_prompts(20, seed=0)[:5]
    scores = rm(prompts=[p.chat() for p in prompts],
                completions=[[{"role": "assistant", "content": p.reference}] for p in prompts])
    assert len(scores) == 5 and all(isinstance(s, float) and math.isfinite(s) for s in scores)
    # Scoring a batch pads; the score of an answer must not depend on its batch neighbours.
    alone = rm.score([prompts[0].chat()], [prompts[0].reference])
    assert alone[0] == pytest.approx(scores[0], abs=1e-4)


def test_length_bias_figure_shows_every_reward():
    prompts = make_prompts(20, seed=0)[:3]
    bias = length_bias([GoldReward(prompts), LengthProxyReward(prompts)], prompts,
                       lengths=(4, 20, 40))
    summary = bias.summary()
    assert summary["length_proxy"]["length_corr_wrong"] > 0.9
    assert summary["gold"]["length_corr_correct"] < -0.5
    fig = length_bias_figure(bias)
    assert len(fig.data) == 4 and fig.data[0].x[0] < fig.data[0].x[-1]


@pytest.mark.slow
def test_learned_proxy_learns_the_labellers_taste_for_length():
    cfg = RewardModelConfig(p_longer=0.7, preset="cpu").resolved()
    _, heldout = split_prompts(cfg)
    questions, lengths = heldout[:6], (4, 15, 30, 45)
    # Before training: the same base and random head (same seed) has no love of length.
    base = LearnedReward(*load_reward_base(cfg.model, cfg.seed, cfg.keep_layers), cfg)
    before = length_bias([base], questions, lengths).length_correlation("learned_rm")
    rm = train_reward_model(cfg)
    assert rm.report.prefers_longer > 0.7  # on pairs of held-out questions
    after = length_bias([rm], questions, lengths).length_correlation("learned_rm")
    # The same answer padded with content-free filler scores higher the longer it gets.
    assert after > 0.5 and after > before + 0.5


def test_rewards_run_inside_grpo_trainer_with_gold_watched_not_optimised(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from ftlab import load_model

    prompts = make_prompts(20, seed=0)[:8]
    model, tok = load_model("tiny")
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4,
                      num_generations=4, max_completion_length=8, reward_weights=[1.0, 0.0],
                      report_to=[], use_cpu=True, logging_steps=1, save_strategy="no",
                      disable_tqdm=True)
    trainer = GRPOTrainer(model=model, processing_class=tok, args=args,
                          reward_funcs=[LengthProxyReward(prompts), GoldReward(prompts)],
                          train_dataset=Dataset.from_list(policy_rows(prompts)))
    trainer.train()
    logged = trainer.state.log_history[0]
    assert {"rewards/length_proxy/mean", "rewards/gold/mean"} <= set(logged)
    assert logged["reward"] == pytest.approx(logged["rewards/length_proxy/mean"])
