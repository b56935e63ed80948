"""Lab 5 (capability regression): generated answers to benchmark items, the two views,
and the labs of Lab 3 and Lab 5 sharing one set of runs (tiny model)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from ftlab.data.benchmark import MCItem
from ftlab.evaluate.behaviour import Sizes, is_shortest, paired_diff, runs_paired
from ftlab.evaluate.generated_mc import mc_prompt, names_choice, picked, score_generated
from ftlab.generation import Answer
from ftlab.labs.collapse import Collapse, arm_table
from ftlab.labs.regression import (
    ELSEWHERE,
    Regression,
    reading,
    regression_table,
    views_paired,
)
from ftlab.labs.show_collapse import side_by_side, type_chart
from ftlab.labs.show_regression import (
    gains_chart,
    readings_html,
    tradeoff_chart,
    views_change_chart,
    views_chart,
)

CAPITAL = MCItem("world_knowledge", "What is the capital of Peru?",
                 ("Lima", "Quito", "Bogota", "Santiago"), 0)
SUM = MCItem("arithmetic", "What is 12 plus 7?", ("18", "19", "29", "9"), 1)


def _answer(text: str) -> Answer:
    return Answer(prompt="", text=text, raw=text, stopped=True, n_tokens=0)


# -- a generated answer names one choice, or scores nothing ----------------------------------


@pytest.mark.parametrize("text, choice", [
    ("The capital of Peru is Lima.", 0),
    ("Lima", 0),
    ("It is Quito, I think.", 1),
    ("Lima, Quito, Bogota or Santiago: Lima.", None),  # names them all: no pick
    ("positive", None),  # the collapsed model's answer names no choice
    ("", None),
])
def test_a_word_answer_picks_the_one_choice_it_names(text, choice):
    assert picked(CAPITAL, text) == choice


@pytest.mark.parametrize("text, choice", [
    ("12 plus 7 is 19.", 1),  # the last number is the answer given
    ("19", 1),
    ("The answer is 18.", 0),
    ("119", None),  # 119 is no choice; its digits are not 19 or 9
    ("positive", None),
])
def test_a_number_answer_picks_by_its_last_number(text, choice):
    assert picked(SUM, text) == choice
    assert names_choice("Lima is the capital", "Lima") and not names_choice("Limassol", "Lima")


def test_the_prompt_lists_the_choices_and_scoring_counts_only_the_right_one():
    assert all(c in mc_prompt(CAPITAL) for c in CAPITAL.choices)
    res = score_generated([CAPITAL, SUM], [_answer("Lima"), _answer("positive")])
    assert res.score == 0.5 and res.extra["correct"] == [True, False]
    assert res.breakdown == {"arithmetic": 0.0, "world_knowledge": 1.0}
    assert res.chance == 0.25 and res.ci95[0] < 0.5 < res.ci95[1]


def test_paired_diff_of_identical_scores_is_zero_and_of_one_item_has_no_interval():
    assert paired_diff([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)
    d, lo, hi = paired_diff([1.0], [0.0])
    assert d == -1 and math.isinf(hi)


# -- both labs on the tiny model: one set of runs ----------------------------------------------

TINY = Sizes(probes_per_type=1, live_per_type=1, probe_tokens=4, other_rows=2,
             bench_per_area=1)
TINY_RUN = {"model": "tiny", "preset": "cpu", "size": 12, "steps": 2, "batch_size": 4,
            "eval_every": 1, "data.val_size": 4}


def test_lab5_reuses_lab3s_runs_and_both_checks_read_them(runs_dir):
    collapse = Collapse(sizes=TINY, **TINY_RUN)
    first = collapse.sweep(seeds=(0,), arms=("aggressive", "gentle"), progress=False)
    assert first.trained == 2
    regression = Regression(sizes=TINY, **TINY_RUN)
    again = regression.sweep(seeds=(0,), arms=("aggressive", "gentle"), progress=False)
    assert again.trained == 0, "Lab 5 must load Lab 3's runs from the run cache"

    v3, v5 = first.check(), again.check()
    assert v3.conditions[1] == "aggressive: pass rate drops beyond noise"
    assert "aggressive: loses elsewhere beyond noise" in v5.conditions
    row = v5.rows[0]
    assert row["aggressive.ll_ci_low"] <= row["aggressive.ll_change"] \
        <= row["aggressive.ll_ci_high"]
    # what the notebooks draw and print
    run = first.runs[("aggressive", 0)]
    assert "before training" in side_by_side(run).data
    assert [t.name for t in type_chart(first.by_seed(0)).data] == ["before training",
                                                                   "aggressive", "gentle"]
    assert {r["arm"] for r in arm_table(first)} == {"aggressive", "gentle"}
    assert len(views_chart(run).data) == 4 and len(gains_chart(run).data) == 2
    assert len(tradeoff_chart(again).data) == 2
    assert [r["arm"] for r in regression_table(again)] == ["aggressive", "gentle"]
    assert [t.name for t in views_change_chart(again).data] == ["aggressive", "gentle"]
    assert "always the shortest choice" in readings_html(again).data
    assert {"gentle_vs_aggressive", "aggressive.short_change", "gentle.lln_ci_low"} <= set(row)
    assert 0 <= run.metric("bench.shortest") <= 1 and 0 <= run.metric("bench.lln") <= 1


GOOD = {"aggressive.task": 1.0, "gentle.task": 1.0, "aggressive.elsewhere_ci_high": -0.16,
        "gentle_vs_aggressive_ci_low": 0.03, "aggressive.views_gap_ci_high": -0.1}


@pytest.mark.parametrize(("changes", "fails"), [
    ({}, None),
    ({"aggressive.elsewhere_ci_high": 0.01}, "aggressive: loses elsewhere beyond noise"),
    ({"gentle_vs_aggressive_ci_low": -0.01}, "gentle: keeps more, beyond noise"),
    ({"aggressive.views_gap_ci_high": 0.01}, "the two readings disagree beyond noise"),
    ({"gentle.task": 0.5}, "gentle: target learned"),
])
def test_the_regression_check_fails_exactly_the_condition_that_is_not_met(changes, fails):
    conds = Regression.conditions(None, {**GOOD, **changes})
    assert [name for name, ok in conds.items() if not ok] == ([fails] if fails else [])


def test_a_small_fall_on_30_items_is_not_read_as_no_fall():
    """The old check passed "log-likelihood: no fall beyond noise" for any interval that
    reached zero: a change of -0.05 on 30 items [-0.25, +0.15] passed it. No condition
    claims "no fall" now, and the reading names the fall the data cannot rule out."""
    conds = Regression.conditions(None, {**GOOD, "aggressive.ll_change": -0.05,
                                         "aggressive.ll_ci_low": -0.25,
                                         "aggressive.ll_ci_high": 0.15})
    assert not any("no fall" in c or "log-likelihood" in c for c in conds)
    said = reading(-0.05, -0.25, 0.15)
    assert said.startswith("cannot tell") and "fall of up to 0.25" in said
    # the same from per-item outcomes: 30 items, two right answers lost, one gained
    before = [1] * 15 + [0] * 15
    after = [0, 0] + [1] * 13 + [1] + [0] * 14
    d, lo, hi = paired_diff(before, after)
    assert math.isclose(d, -1 / 30) and lo < 0 < hi
    assert reading(d, lo, hi).startswith("cannot tell") and reading(-0.2, -0.3, -0.1)[:4] == "fell"


def test_gentle_keeps_more_only_when_the_interval_of_the_difference_says_so():
    """The old check compared two point estimates (gentle -0.27 above aggressive -0.29 passed
    it); the new one reads the paired difference of the two runs, item by item."""
    def run(outcomes):
        metrics = {f"other.item/t/{i}": float(v) for i, v in enumerate(outcomes)}
        return SimpleNamespace(evals=[{"full": True, "metrics": metrics}])

    aggressive = [1, 0] * 20  # 20 of 40 right after training
    barely = [1, 0] * 19 + [1, 1]  # one more right: -0.27 against -0.29 in spirit
    d, lo, hi = runs_paired(run(barely), run(aggressive), ELSEWHERE)
    assert d > 0 and lo < 0, "one item more is not evidence"
    assert not Regression.conditions(None, {**GOOD, "gentle_vs_aggressive_ci_low": lo})[
        "gentle: keeps more, beyond noise"]
    clearly = [1] * 40
    d, lo, hi = runs_paired(run(clearly), run(aggressive), ELSEWHERE)
    assert d == 0.5 and lo > 0


def test_the_benchmark_views_score_per_character_and_mark_the_shortest_pick():
    item = MCItem("x", "q?", ("a much longer right answer", "no", "short"), 0)
    assert is_shortest(item, 1) and not is_shortest(item, 0) and not is_shortest(item, 2)
    tie = MCItem("x", "q?", ("ab", "cd", "efg"), 0)
    assert is_shortest(tie, 0) and is_shortest(tie, 1)


def test_the_readings_disagree_only_where_generated_answers_fall_further():
    def run(gen_before, gen_after, ll_before, ll_after):
        def metrics(gen, ll):
            return {**{f"bench.gen_item/{i}": float(v) for i, v in enumerate(gen)},
                    **{f"bench.ll_item/{i}": float(v) for i, v in enumerate(ll)}}
        return SimpleNamespace(evals=[{"full": True, "metrics": metrics(gen_before, ll_before)},
                                      {"full": True, "metrics": metrics(gen_after, ll_after)}])

    half, third = [1] * 15 + [0] * 15, [1] * 5 + [0] * 25
    assert views_paired(run(half, third, half, third)) == (0.0, 0.0, 0.0)  # fell alike
    d, lo, hi = views_paired(run(half, third, half, half))  # generated fell, ranking level
    assert math.isclose(d, -1 / 3) and hi < 0
