"""Hostile input to the labs (issue 31, group 5): sweeps a lesson cannot be checked on.

A lesson never run must not hold, a sweep without an arm the check reads is refused by
name before any number is read, and a preset that does not exist is refused when the lab
is built. The course labs are built (building trains nothing) and given results that lack
arms: the refusal comes before any run is read, so no course run is trained here. The toy
lab trains one step of the tiny model.
"""

import pytest

import ftlab
from ftlab.errors import ConfigError
from ftlab.labs import Lab, LabResult, Verdict
from ftlab.labs.format_mismatch import FormatMismatch
from ftlab.labs.methods import MethodsLab
from ftlab.labs.overfitting import Overfitting
from ftlab.labs.reward_hacking import RewardHacking


class OneStep(Lab):
    """A toy lesson on the tiny model, one training step an arm."""

    claim = "The fast arm ends with a lower validation loss."
    base = ftlab.RunConfig(model="tiny", preset="cpu").replace(
        size=10, steps=1, batch_size=2, eval_every=1, **{"eval.samples": 0})
    arms = {"slow": {"lr": 1e-5}, "fast": {"lr": 3e-3}}

    def measure(self, runs):
        return {arm: r.final["final_val_loss"] for arm, r in runs.items()}

    def conditions(self, m):
        return {"fast learns more": m["fast"] <= m["slow"]}


def test_an_empty_seed_list_is_refused_before_anything_runs(runs_dir):
    with pytest.raises(ConfigError, match=r"seeds = \[\] is not allowed: expected at least "
                       r"one seed \(e\.g\. seeds=\[0, 1, 2\]\)"):
        OneStep().sweep(seeds=[], progress=False)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_a_verdict_over_no_seed_is_falsy_and_a_result_without_runs_is_refused():
    verdict = Verdict("A claim.", rows=[], conditions=[], required=0)
    assert not verdict and not verdict.passed
    assert verdict.summary.startswith("NOT CHECKED: no seed was measured")
    with pytest.raises(AssertionError, match="NOT CHECKED"):
        verdict.assert_holds()
    with pytest.raises(ConfigError, match=r"seeds = \[\] is not allowed: expected at least one "
                       r"seed swept\. .*lab\.sweep\(\) runs OneStep's seeds \[0, 1, 2\]"):
        LabResult(OneStep()).check()


@pytest.mark.parametrize("seeds, hint", [
    (0, r"For seed 0 alone: seeds=\[0\]\.$"),
    (3, r"For seed 3 alone: seeds=\[3\]; for 3 seeds: seeds=range\(3\)\.$"),
    ("012", r"expected a list of seeds \(e\.g\. seeds=\[0, 1, 2\]\)\.$"),
])
def test_a_bare_number_of_seeds_is_refused_with_both_readings(runs_dir, seeds, hint):
    """``seeds=3`` could mean seed 3 or three seeds: refused, both spellings offered."""
    with pytest.raises(ConfigError, match=rf"^seeds = {seeds!r} is not allowed: .*{hint}"):
        OneStep().sweep(seeds=seeds, progress=False)


def test_a_seed_given_twice_or_an_unknown_arm_is_refused_before_the_first_run(runs_dir):
    with pytest.raises(ConfigError, match=r"each seed once\. Seed 1 is given twice"):
        OneStep().sweep(seeds=[0, 1, 1], progress=False)
    with pytest.raises(ConfigError, match="arm = 'medium' is not allowed"):
        OneStep().sweep(seeds=[0], arms=["slow", "medium"], progress=False)
    with pytest.raises(ConfigError, match=r"arms = \[\] is not allowed: expected at least one"):
        OneStep().sweep(seeds=[0], arms=[], progress=False)
    assert not runs_dir.exists() or not any(runs_dir.iterdir()), "nothing may train first"


def test_a_sweep_without_an_arm_the_check_reads_is_refused_by_name(runs_dir):
    lab = OneStep()
    result = lab.sweep(seeds=[0], arms="slow", progress=False)  # one arm, as a string
    assert list(result.runs) == [("slow", 0)]
    msg = (r"arms = \['slow'\] is not allowed: expected every arm OneStep's check reads, on "
           r"every seed: 'slow', 'fast' \(seed 0 lacks 'fast'\)\. Sweep them: "
           r"lab\.sweep\(seeds=\[0\]\) runs every checked arm")
    with pytest.raises(ConfigError, match=msg):
        result.check()
    assert [set(m) for m in result.numbers()] == [{"seed", "slow"}]  # figures read the rest
    result.runs.update(lab.sweep(seeds=[0], arms=["fast"], progress=False).runs)
    verdict = result.check()  # both arms now: checked as before
    assert [r["seed"] for r in verdict.rows] == [0] and verdict.conditions == ["fast learns more"]


@pytest.mark.parametrize("lab_class, have, lacks", [
    (FormatMismatch, ["matched"], "'stray_50', 'stray_100'"),
    (Overfitting, ["small", "more_data"], "'early_stop'"),
    (MethodsLab, ["lora"], "'full', 'qlora', 'prefix', 'prompt'"),
    (RewardHacking, ["length_penalty", "strong_kl"], "'hacked'"),
])
def test_every_course_lab_names_the_arms_its_check_misses(lab_class, have, lacks):
    lab = lab_class(preset="cpu", model="tiny")
    runs = {(arm, 0): None for arm in have}  # never read: the refusal comes first
    runs.update({(arm, 1): None for arm in lab.needed_arms})  # seed 1 is complete
    with pytest.raises(ConfigError) as info:
        LabResult(lab, runs).check()
    text = str(info.value)
    assert f"(seed 0 lacks {lacks})" in text and "seed 1" not in text.split("(")[1]
    assert f"lab.sweep(seeds=[0], arms={list(lab.needed_arms)})" in text


def test_a_measure_that_needs_a_missing_arm_gives_the_same_refusal_not_a_key_error():
    lab = Overfitting(preset="cpu", model="tiny")
    result = LabResult(lab, {("small", 0): None, ("more_data", 0): None})
    with pytest.raises(ConfigError, match=r"\(seed 0 lacks 'early_stop'\)"):
        result.numbers()  # what the figures read


def test_the_reward_hacking_lab_still_checks_the_hacked_arm_alone():
    """Its penalty conditions are added only when that arm was swept (as before)."""
    lab = RewardHacking(preset="cpu", model="tiny")
    assert lab.needed_arms == ("hacked",) and lab.checked == ("hacked", "length_penalty")
    assert LabResult(lab, {("hacked", 0): None}).missing_arms() == {}


@pytest.mark.parametrize("lab_class", [Lab, FormatMismatch, OneStep])
def test_a_preset_that_does_not_exist_is_refused_naming_those_that_do(lab_class):
    with pytest.raises(ConfigError, match="preset = 'nosuch' is not allowed: expected one of "
                       "'auto', 'cpu', 'gpu'"):
        lab_class(preset="nosuch")
