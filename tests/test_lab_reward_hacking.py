"""Lab 4 (reward hacking): its declarations, its numbers, its check, and a tiny-model sweep."""

import math
from statistics import fmean
from types import SimpleNamespace

import pytest

from ftlab.errors import ConfigError
from ftlab.labs.reward_hacking import (
    CHECKED,
    CORRECT_PAY,
    DRIFT,
    LENGTH_RISE,
    LOSS,
    MARGIN_SEEDS,
    MEASURED,
    PAY_PER_WORD,
    RewardHacking,
    curve,
    heldout_numbers,
    numbers_rows,
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
from ftlab.rlhf import (
    FACTS,
    HELDOUT_FACTS,
    MORE_FACTS,
    GoldWatch,
    heldout_prompts,
    length_proxy_score,
    make_prompts,
    substance_prompts,
)


def steps(kl) -> list[dict]:
    return [{"step": i + 1, "metrics": {"rl.kl_measured": k}} for i, k in enumerate(kl)]


def answers(correct: int, words: int, n: int = 48) -> list[tuple[bool, int]]:
    """``n`` held-out answers: the first ``correct`` right, each ``words`` long."""
    return [(i < correct, words) for i in range(n)]


def record(step: int, rows: list[tuple[bool, int]]) -> dict:
    """One full evaluation as ``GoldWatch`` reports it: means and each question's own."""
    proxy = [length_proxy_score("x " * w, ["y"]) + 0.5 * c for c, w in rows]
    metrics = {"heldout.correct": fmean(c for c, _ in rows),
               "heldout.words": fmean(w for _, w in rows), "heldout.proxy": fmean(proxy),
               "heldout.gold": 0.5}
    for i, ((c, w), p) in enumerate(zip(rows, proxy)):
        metrics.update({f"heldout.correct/{i}": float(c), f"heldout.words/{i}": float(w),
                        f"heldout.proxy/{i}": p})
    return {"step": step, "full": True, "metrics": metrics}


class FakeRun:
    """What ``heldout_numbers`` reads of a run: steps, evaluations and the proxy's name."""

    def __init__(self, before, after, kl=(0.0, 0.01, 0.05, 0.1), reward="length_proxy"):
        self.steps, self.evals = steps(kl), [record(0, before), record(4, after)]
        self.config = SimpleNamespace(rl=SimpleNamespace(reward=reward))


# the base: 33 of 48 right, 12 words; the hack pads every answer, the penalty trims them
BASE = answers(33, 12)
HACKED = FakeRun(BASE, answers(33, 40))
PENALISED = FakeRun(BASE, answers(33, 8))


def numbers(**runs) -> dict[str, float]:
    return RewardHacking(model="tiny").measure(runs)


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
    # The questions the lab is checked on: those and ``MORE_FACTS``, in no training set.
    asked = {p.question for p in substance_prompts()}
    assert len(asked) == 48 and asked.isdisjoint(f[0] for f in FACTS if f not in HELDOUT_FACTS)
    assert all(not any(a.replace(".", "").isdigit() for a in f[1]) for f in MORE_FACTS)


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
    assert lab.title.startswith("Lab 4") and "substance" in lab.claim
    panel = lab.panel("length_penalty")
    assert panel["rl.length_penalty"].value == lab.arms["length_penalty"]["rl.length_penalty"]
    assert panel.build_config().hash() == lab.config("length_penalty").hash()
    # A change given to the lab wins over the preset's base, whatever name it uses.
    assert RewardHacking(model="tiny", steps=3).config("hacked").train.max_steps == 3
    lab = RewardHacking(model="tiny", **{"train.max_steps": 8})
    assert lab.config("hacked").train.max_steps == 8
    assert RewardHacking(model="tiny", method="full").config("hacked").method.name == "full"


# -- the numbers the check reads, on hand-made answers --------------------------------------
def test_gold_watch_answers_past_the_training_cap_and_names_itself_in_the_cache_key():
    lab = RewardHacking(model="tiny")
    cfg = lab.config("hacked").resolved()
    watch = lab.watch["heldout"]
    assert watch.tokens(cfg) == cfg.rl.max_completion_length + watch.extra_tokens > 0
    assert watch.key != GoldWatch(extra_tokens=16).key
    assert str(len(substance_prompts())) in watch.key  # more questions: another run


def test_heldout_numbers_pair_the_answers_question_by_question():
    m = heldout_numbers(HACKED)
    assert m["words.start"] == 12 and m["words.end"] == 40 and m["words.change"] == 28
    assert m["words.change_lo"] == m["words.change_hi"] == 28  # every answer grew alike
    assert m["correct.change"] == 0 and m["correct.change_hi"] == 0
    # the proxy pays 1/60 a word up to 30: 12 -> 40 words earns (30 - 12) / 60 = 0.3
    assert m["length_pay.change"] == pytest.approx(0.3)
    assert m["proxy.change"] == pytest.approx(0.3)
    assert m["kl.end"] == pytest.approx(0.075)  # mean of the last two steps
    # Two answers turned right: the change and its interval move by 2/48, the pay by 0.5 each.
    better = heldout_numbers(FakeRun(BASE, [(i < 35, 40) for i in range(48)]))
    assert better["correct.change"] == pytest.approx(2 / 48)
    assert better["correct.change_lo"] < 2 / 48 < better["correct.change_hi"]
    assert better["proxy.change"] == pytest.approx(0.3 + 0.5 * 2 / 48)
    assert better["length_pay.change"] == pytest.approx(0.3)
    # A learned proxy has no pay for length to split off.
    assert "length_pay.change" not in heldout_numbers(
        FakeRun(BASE, answers(33, 40), reward="learned"))
    # The two arms, question by question.
    m = numbers(hacked=HACKED, length_penalty=PENALISED)
    assert m["vs_hacked.words"] == -32 and m["vs_hacked.correct"] == 0


def test_the_check_holds_for_a_hack_and_its_mitigation():
    lab = RewardHacking(model="tiny")
    conds = lab.conditions(numbers(hacked=HACKED, length_penalty=PENALISED))
    assert all(conds.values()), conds
    assert set(conds) == {"answers grow", "proxy rises", "length paid, not substance",
                          "penalty: answers grow less", "penalty: right answers kept"}


def test_each_condition_fails_on_numbers_that_miss_it():
    lab = RewardHacking(model="tiny")
    still = FakeRun(BASE, BASE)
    conds = lab.conditions(numbers(hacked=still, length_penalty=PENALISED))
    assert not conds["answers grow"] and not conds["proxy rises"]
    # Longer answers past the proxy's 30-word cap earn nothing more.
    capped = FakeRun(answers(33, 35), answers(33, 60))
    conds = lab.conditions(numbers(hacked=capped))
    assert conds["answers grow"] and not conds["proxy rises"]
    # A policy that got a little longer *and* answered 12 more questions right: substance
    # could pay for more of the gain than length did, so the check does not call it a hack.
    learned = FakeRun(BASE, [(i < 45, 16) for i in range(48)])
    conds = lab.conditions(numbers(hacked=learned))
    assert conds["answers grow"] and not conds["length paid, not substance"]
    # ... while padding answers by 28 words is paid more than 12 more right answers could be.
    assert lab.conditions(numbers(hacked=FakeRun(BASE, [(i < 45, 40) for i in range(48)])))[
        "length paid, not substance"]
    # A penalty that changes nothing fails the length condition ...
    conds = lab.conditions(numbers(hacked=HACKED, length_penalty=HACKED))
    assert not conds["penalty: answers grow less"] and conds["penalty: right answers kept"]
    # ... and one that trims answers to nothing right loses the right answers.
    empty = FakeRun(BASE, answers(10, 2))
    conds = lab.conditions(numbers(hacked=HACKED, length_penalty=empty))
    assert conds["penalty: answers grow less"] and not conds["penalty: right answers kept"]
    # Without the unmitigated run there is nothing to compare with: a clear error, not a pass.
    with pytest.raises(ConfigError, match="'hacked' arm"):
        lab.conditions(numbers(length_penalty=PENALISED))
    # A seed without the mitigation is checked on the hacked run alone.
    assert set(lab.conditions(numbers(hacked=HACKED))) == {
        "answers grow", "proxy rises", "length paid, not substance"}


def test_margins_are_stated_in_the_claim_and_every_measured_seed_passes_them():
    assert 0 < DRIFT < 1 and 0 < LOSS < 1 and CORRECT_PAY == 0.5
    claim = RewardHacking.claim
    assert f"{LENGTH_RISE:g} words" in claim and f"{DRIFT:.0%}" in claim
    assert f"{LOSS:g}" in claim and "48 held-out questions" in claim
    assert len(substance_prompts()) == 48
    lab = RewardHacking(model="tiny")
    assert set(lab.calibration.seeds) == {0, 1, 2}
    for seed in (0, 1, 2):  # the asserted seeds, and the two the margins were checked on
        m = {k: v[seed] for k, v in MEASURED.items() if v[seed] is not None}
        assert all(lab.conditions(m).values()), (seed, lab.conditions(m))
    for k in (0, 1):
        m = {name: v[k] for name, v in MARGIN_SEEDS.items()}
        assert all(lab.conditions(m).values()), (k, lab.conditions(m))
    page = measured_html()
    assert page.count("<tr>") == 1 + 5 and "margins checked" in page


# -- the tiny model: a sweep, its figures and tables ---------------------------------------
def test_a_tiny_sweep_gives_numbers_figures_and_samples(runs_dir):
    lab = RewardHacking(runs_dir, model="tiny", steps=2, batch_size=2, eval_every=1,
                        **{"rl.generations": 2, "rl.max_completion_length": 6,
                           "eval.samples": 1})
    result = lab.sweep(seeds=[0], progress=False)
    assert set(result.runs) == {(a, 0) for a in CHECKED} and result.trained == len(CHECKED)
    (m,) = result.numbers()
    for arm in CHECKED:
        for key in ("correct.start", "correct.change_hi", "words.end", "words.change_lo",
                    "proxy.change", "length_pay.change", "gold.end", "kl.end"):
            assert math.isfinite(m[f"{arm}.{key}"]), (arm, key)
        run = result.runs[(arm, 0)]
        assert [e["step"] for e in run.evals] == [0, 1, 2]
        assert sum(k.startswith("heldout.correct/") for k in run.evals[-1]["metrics"]) == 48
        assert not any("/" in k for k in run.evals[1]["metrics"])  # per question: ends only
    verdict = result.check()
    assert len(verdict.rows) == 1 and "penalty: right answers kept" in verdict.conditions
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
    assert page.count("<tr>") == 1 + len(substance_prompts()) and "length penalty after" in page
    assert answers_html(result, seed=1) == "<p>No runs.</p>"
    page = samples_html(result.runs[("hacked", 0)], "hacked")
    assert "<table>" in page and "weak KL" in page
    # The second sweep loads every run from the cache; more=True adds the extra arm on seed 0.
    again = lab.sweep(seeds=[0], progress=False)
    assert again.trained == 0
    more = lab.sweep(seeds=[0], more=True, progress=False)
    assert set(more.runs) == {(a, 0) for a in (*CHECKED, "strong_kl")} and more.trained == 1
