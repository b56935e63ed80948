"""Lab 4 (reward hacking): its declarations, its numbers, its check, and a tiny-model sweep."""

import math

import pytest

from ftlab.errors import ConfigError
from ftlab.labs.reward_hacking import (
    CHECKED,
    DRIFT,
    GOLD_FALL,
    KEEPS_GOLD,
    LENGTH_RISE,
    MEASURED,
    MEASURED_KEYS,
    PAY_PER_WORD,
    PROXY_RISE,
    RewardHacking,
    curve,
    numbers_rows,
    trajectory,
)
from ftlab.labs.show_reward_hacking import (
    answers_html,
    arms_html,
    curves_figure,
    kl_figure,
    measured_html,
    numbers_html,
    samples_html,
)
from ftlab.rlhf import FACTS, HELDOUT_FACTS, GoldWatch, heldout_prompts, make_prompts


def evals(gold, proxy, words, every=4) -> list[dict]:
    """Evaluation records as a run keeps them (``run.evals``), from step 0."""
    return [{"step": i * every, "metrics": {"heldout.gold": g, "heldout.proxy": p,
                                            "heldout.words": w, "heldout.correct": 0.6}}
            for i, (g, p, w) in enumerate(zip(gold, proxy, words, strict=True))]


def steps(kl) -> list[dict]:
    return [{"step": i + 1, "metrics": {"rl.kl_measured": k}} for i, k in enumerate(kl)]


HACKED = (steps([0.0, 0.01, 0.05, 0.1]), evals([0.57, 0.32, 0.36], [0.63, 0.74, 0.80],
                                                [17.6, 26.8, 28.2]))
PENALISED = (steps([0.0, 0.01, 0.02, 0.03]), evals([0.57, 0.62, 0.66], [0.63, 0.60, 0.47],
                                                   [17.6, 15.0, 8.0]))


def numbers(**arms) -> dict[str, float]:
    out = {}
    for arm, (st, ev) in arms.items():
        out.update({f"{arm}.{k}": v for k, v in trajectory(st, ev).items()})
    return out


# -- held-out questions ---------------------------------------------------------------------
def test_heldout_questions_never_reach_a_prompt_set():
    held = {p.question for p in heldout_prompts()}
    assert len(held) == len(HELDOUT_FACTS) == 12 and held <= {f[0] for f in FACTS}
    for seed in range(5):
        for frac in (0.25, 1.0):
            asked = {p.question for p in make_prompts(40, seed=seed, fact_fraction=frac)}
            assert not asked & held
    # Every fact not held out can still be asked.
    assert len({p.question for p in make_prompts(24, seed=0, fact_fraction=1.0)}) == 24


# -- declarations -------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_every_arm_is_a_valid_policy_run_and_the_arms_differ_only_in_the_mitigation(preset):
    lab = RewardHacking(model="tiny", preset=preset)
    declared = RewardHacking.presets[preset]
    assert set(lab.arms) == set(declared.arms) and lab.checked == CHECKED
    assert set(lab.extra) == set(lab.arms) - set(CHECKED) and "strong_kl" in lab.extra
    assert (preset == "gpu") == ("fair_labeller" in lab.arms)
    cfg = {arm: lab.config(arm).resolved() for arm in lab.arms}
    hacked = cfg["hacked"]
    assert all(c.rl is not None and c.rl.kl > 0 for c in cfg.values())
    assert hacked.train.max_steps == declared.base["steps"] and hacked.rl.fact_fraction == 1
    assert hacked.rl.reward == ("length_proxy" if preset == "cpu" else "learned")
    strong = cfg["strong_kl"]
    assert strong.rl.kl >= 100 * hacked.rl.kl
    assert strong.replace(**{"rl.kl": hacked.rl.kl}).to_dict() == hacked.to_dict()
    penalised = cfg["length_penalty"]
    assert penalised.rl.length_penalty > 0 == hacked.rl.length_penalty
    assert penalised.replace(**{"rl.length_penalty": 0.0}).to_dict() == hacked.to_dict()
    if preset == "cpu":  # the penalty cancels the proxy's pay per word, no more
        assert penalised.rl.length_penalty == pytest.approx(PAY_PER_WORD, rel=0.01)


def test_the_lab_declares_its_panel_claim_and_sweep():
    lab = RewardHacking(model="tiny")
    assert lab.title.startswith("Lab 4") and "gold" in lab.claim
    panel = lab.panel("length_penalty")
    assert panel["rl.length_penalty"].value == lab.arms["length_penalty"]["rl.length_penalty"]
    assert panel.build_config().hash() == lab.config("length_penalty").hash()
    # A change given to the lab wins over the preset's base, whatever name it uses.
    assert RewardHacking(model="tiny", steps=3).config("hacked").train.max_steps == 3
    lab = RewardHacking(model="tiny", **{"train.max_steps": 8})
    assert lab.config("hacked").train.max_steps == 8
    assert RewardHacking(model="tiny", method="full").config("hacked").method.name == "full"


# -- the numbers the check reads, on hand-made curves --------------------------------------
def test_gold_watch_answers_past_the_training_cap_and_names_itself_in_the_cache_key():
    lab = RewardHacking(model="tiny")
    cfg = lab.config("hacked").resolved()
    watch = lab.watch["heldout"]
    assert watch.tokens(cfg) == cfg.rl.max_completion_length + watch.extra_tokens > 0
    assert watch.key != GoldWatch(extra_tokens=16).key


def test_trajectory_reads_start_peak_and_end_of_the_heldout_answers():
    t = trajectory(*HACKED)
    assert t["gold.start"] == 0.57 and t["gold.end"] == 0.36
    assert t["gold.peak"] == 0.57 and t["gold.peak_step"] == 0
    assert t["proxy.peak"] == 0.80 and t["proxy.peak_step"] == 8
    assert t["words.start"] == 17.6 and t["words.end"] == 28.2
    assert t["kl.end"] == pytest.approx(0.075)  # mean of the last two steps
    # A gold curve that rises first peaks after the start.
    rising = trajectory(steps([0.1]), evals([0.5, 0.7, 0.4], [0.6] * 3, [15] * 3))
    assert rising["gold.peak"] == 0.7 and rising["gold.peak_step"] == 4
    empty = trajectory([], [])
    assert all(math.isnan(empty[k]) for k in MEASURED_KEYS)


def test_the_check_holds_for_a_hack_and_its_mitigation():
    lab = RewardHacking(model="tiny")
    conds = lab.conditions(numbers(hacked=HACKED, length_penalty=PENALISED))
    assert all(conds.values()), conds
    assert set(conds) == {"answers grow", "proxy rises", "gold falls from its peak",
                          "penalty keeps gold", "penalty: answers grow less"}


def test_each_condition_fails_on_numbers_that_miss_it():
    lab = RewardHacking(model="tiny")
    still = (steps([0.0] * 4), evals([0.57, 0.56, 0.55], [0.63, 0.64, 0.65], [17.6, 18, 18]))
    conds = lab.conditions(numbers(hacked=still, length_penalty=PENALISED))
    assert not conds["answers grow"] and not conds["proxy rises"]
    assert not conds["gold falls from its peak"]
    # Longer answers that the proxy does not pay for more (e.g. past its 30-word cap).
    unpaid = (HACKED[0], evals([0.57, 0.32, 0.36], [0.63, 0.64, 0.66], [17.6, 26.8, 28.2]))
    conds = lab.conditions(numbers(hacked=unpaid, length_penalty=PENALISED))
    assert not conds["proxy rises"] and conds["answers grow"]
    # Gold that falls by less than the margin.
    mild = (HACKED[0], evals([0.57, 0.52, 0.50], [0.63, 0.74, 0.80], [17.6, 26.8, 28.2]))
    assert not lab.conditions(numbers(hacked=mild))["gold falls from its peak"]
    # A mitigation that changes nothing fails both of its conditions.
    conds = lab.conditions(numbers(hacked=HACKED, length_penalty=HACKED))
    assert not conds["penalty keeps gold"] and not conds["penalty: answers grow less"]
    # ... and one that keeps length but not gold fails the gold condition alone.
    empty = (PENALISED[0], evals([0.57, 0.3, 0.2], [0.63, 0.3, 0.1], [17.6, 3, 1]))
    conds = lab.conditions(numbers(hacked=HACKED, length_penalty=empty))
    assert not conds["penalty keeps gold"] and conds["penalty: answers grow less"]
    # Without the unmitigated run there is nothing to compare with: a clear error, not a pass.
    with pytest.raises(ConfigError, match="'hacked' arm"):
        lab.conditions(numbers(length_penalty=PENALISED))
    # A seed without the mitigation is checked on the hacked run alone.
    assert set(lab.conditions(numbers(hacked=HACKED))) == {
        "answers grow", "proxy rises", "gold falls from its peak"}


def test_margins_are_stated_in_the_claim_and_the_measured_seeds_pass_them():
    # Above one held-out answer's worth (12 questions): no single answer can pass them.
    n = len(heldout_prompts())
    assert GOLD_FALL > 1 / n and KEEPS_GOLD > 1 / n and PROXY_RISE > 0.5 / n
    assert 0 < DRIFT < 1
    claim = RewardHacking.claim
    assert f"{LENGTH_RISE:g} words" in claim and f"{DRIFT:.0%}" in claim
    assert f"{GOLD_FALL:g}" in claim and f"{KEEPS_GOLD:g}" in claim
    lab = RewardHacking(model="tiny")
    assert {s for s, _ in MEASURED} == {0, 1, 2}
    for seed in (0, 1, 2):
        m = {f"{arm}.{k}": v for (s, arm), row in MEASURED.items() if s == seed
             for k, v in zip(MEASURED_KEYS, row, strict=True)}
        assert all(lab.conditions(m).values()), (seed, lab.conditions(m))
    page = measured_html()
    assert page.count("<tr>") == 1 + len(MEASURED) and "strong KL" in page
    assert measured_html(arms=["strong_kl"]).count("<tr>") == 2


# -- the tiny model: a sweep, its figures and tables ---------------------------------------
def test_a_tiny_sweep_gives_numbers_figures_and_samples(runs_dir):
    lab = RewardHacking(runs_dir, model="tiny", steps=2, batch_size=2, eval_every=1,
                        **{"rl.generations": 2, "rl.max_completion_length": 6,
                           "eval.samples": 1})
    result = lab.sweep(seeds=[0], progress=False)
    assert set(result.runs) == {(a, 0) for a in CHECKED} and result.trained == len(CHECKED)
    (m,) = result.numbers()
    for arm in CHECKED:
        for key in ("gold.start", "gold.peak", "gold.end", "proxy.start", "proxy.end",
                    "words.start", "words.end", "kl.end"):
            assert math.isfinite(m[f"{arm}.{key}"]), (arm, key)
        run = result.runs[(arm, 0)]
        assert [e["step"] for e in run.evals] == [0, 1, 2]
    verdict = result.check()
    assert len(verdict.rows) == 1 and "penalty keeps gold" in verdict.conditions
    assert [r["arm"] for r in numbers_rows(result)] == list(CHECKED)
    assert numbers_rows(result, seeds=[1]) == [] and numbers_html(result, [1]) == "<p>No runs.</p>"
    assert "<table>" in numbers_html(result) and "strong_kl" in arms_html(lab)
    fig = curves_figure(result, seed=0)
    titles = {a.text for a in fig.layout.annotations}
    assert {"proxy reward (optimised)", "gold reward (watched only)"} <= titles
    assert all(ax.title.text for ax in (fig.layout.xaxis, fig.layout.yaxis3))
    assert len({t.legendgroup for t in fig.data}) == 2
    measured = {arm: curve(result.runs[(arm, 0)], "kl_measured") for arm in CHECKED}
    assert all(steps for steps, _ in measured.values())  # every run logs its KL, step by step
    kl_panel = [t for t in fig.data if t.xaxis == "x4"]
    assert sorted(len(t.x) for t in kl_panel) == sorted(len(s) for s, _ in measured.values())
    fig = kl_figure(result)
    assert "KL" in fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert len(fig.data) == 2 * len(CHECKED)
    # its x is the KL each run measured (a figure on the wrong metric name plots only zeros)
    assert max(x for t in fig.data for x in t.x) > 0
    assert max(max(kl) for _, kl in measured.values()) > 0
    page = answers_html(result, seed=0)
    assert page.count("<tr>") == 1 + len(heldout_prompts()) and "length penalty after" in page
    assert answers_html(result, seed=1) == "<p>No runs.</p>"
    page = samples_html(result.runs[("hacked", 0)], "hacked")
    assert "<table>" in page and "weak KL" in page
    # The second sweep loads every run from the cache; more=True adds the extra arm on seed 0.
    again = lab.sweep(seeds=[0], progress=False)
    assert again.trained == 0
    more = lab.sweep(seeds=[0], more=True, progress=False)
    assert set(more.runs) == {(a, 0) for a in (*CHECKED, "strong_kl")} and more.trained == 1
