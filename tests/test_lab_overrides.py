"""A change given to a lab wins in every arm, under any spelling, and reaches the trained run.

The preset's sizes and the arm's own changes come first; the caller's changes last
(``Lab.__init__``): ``Overfitting(**{"train.learning_rate": 1.234e-4})`` once trained every
arm at the preset's 3e-3, silently.
"""

import pytest

from ftlab.labs.collapse import Collapse
from ftlab.labs.format_mismatch import FormatMismatch
from ftlab.labs.methods import MethodsLab
from ftlab.labs.overfitting import Overfitting
from ftlab.labs.regression import Regression
from ftlab.labs.reward_hacking import RewardHacking

LR = 1.234e-4  # no preset or arm of any lab uses it
LABS = [Overfitting, FormatMismatch, Collapse, Regression, MethodsLab, RewardHacking]
SPELLINGS = ["lr", "train.learning_rate"]

# The fewest steps and rows each lab's trainer runs with on the tiny model (seconds).
TINY = {"model": "tiny", "preset": "cpu", "steps": 1, "eval_every": 1, "batch_size": 2,
        "size": 12, "data.val_size": 2, "data.max_length": 64, "eval.samples": 0}
RL_TINY = {"rl.generations": 2, "rl.max_completion_length": 4}


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("lab_class", LABS, ids=lambda c: c.__name__)
def test_a_learning_rate_given_to_the_lab_reaches_every_arm(lab_class, spelling, preset):
    lab = lab_class(model="tiny", preset=preset, **{spelling: LR})
    assert lab.preset == preset and lab.arms
    for arm in lab.arms:
        for seed in (0, 1):
            cfg = lab.config(arm, seed).resolved()
            assert cfg.train.learning_rate == LR, (arm, seed)
            assert cfg.preset == preset and cfg.seed == seed


@pytest.mark.parametrize("lab_class", LABS, ids=lambda c: c.__name__)
def test_a_step_count_given_to_the_lab_wins_over_the_preset_under_either_name(lab_class):
    for spelling in ("steps", "train.max_steps"):
        lab = lab_class(model="tiny", preset="cpu", **{spelling: 3})
        assert {lab.config(a).resolved().train.max_steps for a in lab.arms} == {3}


@pytest.mark.parametrize("lab_class", LABS, ids=lambda c: c.__name__)
def test_without_changes_every_arm_keeps_the_preset_and_its_own_changes(lab_class):
    lab = lab_class(model="tiny", preset="cpu")
    declared = lab_class.presets["cpu"]
    for arm, changes in declared.arms.items():
        cfg = lab.config(arm)
        assert cfg.replace(**changes).to_dict() == cfg.to_dict(), arm  # the arm is applied
        assert cfg.replace(**declared.base).replace(**changes).to_dict() == cfg.to_dict()


@pytest.mark.parametrize("lab_class", LABS, ids=lambda c: c.__name__)
def test_a_trained_run_records_the_learning_rate_given_to_the_lab(lab_class, runs_dir):
    changes = {**TINY, **(RL_TINY if lab_class is RewardHacking else {})}
    lab = lab_class(**{"train.learning_rate": LR}, **changes)
    lab.watch = {}  # the lesson's evaluators are not what this test is about
    arm = lab.checked[0]
    run = lab.run(arm, 0, progress=False)
    assert run.config.train.learning_rate == LR
    assert run.config.train.max_steps == 1 and run.config.model == "tiny"
    assert run.config.to_dict() == lab.config(arm, 0).resolved().to_dict()
