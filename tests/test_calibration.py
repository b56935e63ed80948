"""Every preset carries its calibration, and the labs choose by it (issue 29).

A calibrated preset asserts its check; ``preset="auto"`` on a GPU machine, whose ``gpu``
preset was never calibrated, runs the calibrated ``cpu`` experiment instead and says so; an
explicit ``preset="gpu"`` runs, labelled "not calibrated", and is never asserted. Nothing here
trains: labs are built, verdicts made from numbers given by hand.
"""

from __future__ import annotations

import importlib
import re
from datetime import date

import pytest
import torch

from ftlab import RunConfig, models
from ftlab.labs import Lab, LabResult, Preset
from ftlab.labs.calibration import Calibration, by_seed
from ftlab.labs.collapse import Collapse
from ftlab.labs.format_mismatch import FormatMismatch
from ftlab.labs.methods import MethodsLab
from ftlab.labs.overfitting import Overfitting
from ftlab.labs.regression import Regression
from ftlab.labs.reward_hacking import RewardHacking

LABS = (Overfitting, FormatMismatch, Collapse, Regression, RewardHacking, MethodsLab)
# The labs whose calibration recorded every number their conditions read.
COMPLETE = (FormatMismatch, Collapse, Regression, RewardHacking)
ids = [lab.__name__ for lab in LABS]
# Every preset without a calibration, lab by lab (today: every gpu preset).
UNCALIBRATED = [(lab, name) for lab in LABS for name, p in lab.presets.items()
                if p.calibration is None]


@pytest.fixture
def gpu_machine(monkeypatch):
    """A machine with a T4 (compute capability 7.5), as ``RunConfig.resolved`` sees it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models, "cuda_capability", lambda device: (7, 5))
    assert RunConfig(preset="auto").resolved().preset == "gpu"


def fake_result(lab: Lab, numbers: Calibration, arms=None) -> LabResult:
    """A sweep without training: ``lab.measure`` gives each seed's numbers from ``numbers``."""
    runs = {(arm, seed): seed for seed in numbers.seeds for arm in (arms or lab.checked)}
    lab.measure = lambda by_arm: dict(numbers.per_seed[next(iter(by_arm.values()))])
    return LabResult(lab, runs)


@pytest.mark.parametrize("lab_cls", LABS, ids=ids)
def test_every_cpu_preset_carries_its_calibration_and_no_gpu_preset_does(lab_cls):
    cal = lab_cls.presets["cpu"].calibration
    assert isinstance(cal, Calibration)
    assert cal.where == "2 CPU cores, no GPU" and isinstance(cal.when, date)
    assert set(cal.seeds) >= set(lab_cls.seeds), "every seed the lab sweeps was measured"
    if lab_cls is not MethodsLab:  # the methods lab sweeps seed 0 only
        assert cal.seeds == (0, 1, 2)
    assert all(cal.per_seed[s] for s in cal.seeds)
    assert cal.wall  # every lab recorded a wall time, per run or per sweep
    lab = lab_cls(preset="cpu")
    for name in cal.names:  # names the lab's measure gives (each has its words)
        assert lab.number_label(name) != name, name
    # one source of truth: the numbers are the module's MEASURED, referenced, not copied
    refs = re.findall(r"ftlab\.labs\.\w+\.MEASURED", cal.source)
    assert refs and refs[0] == lab_cls.__module__ + ".MEASURED"
    for ref in refs:
        module, _, const = ref.rpartition(".")
        assert getattr(importlib.import_module(module), const)
    assert lab_cls.presets["gpu"].calibration is None  # no GPU run calibrated any check yet
    assert lab.calibration is cal and not lab.uncalibrated and lab.notice is None


@pytest.mark.parametrize("lab_cls", COMPLETE, ids=[c.__name__ for c in COMPLETE])
def test_the_calibrated_numbers_pass_their_own_check(lab_cls, capsys):
    lab = lab_cls(preset="cpu")
    verdict = fake_result(lab, lab.calibration).check()
    assert verdict.passed and verdict.holds_in == 3
    assert verdict.assert_holds() is verdict and capsys.readouterr().out == ""
    assert str(verdict).endswith("calibrated: preset 'cpu', measured on 2 CPU cores, no GPU, "
                                 f"{lab.calibration.when.isoformat()}, seeds 0-2")
    assert "not calibrated" not in str(verdict).lower()


@pytest.mark.parametrize(("lab_cls", "preset"), UNCALIBRATED,
                         ids=[f"{c.__name__}-{p}" for c, p in UNCALIBRATED])
def test_an_uncalibrated_preset_is_shown_labelled_and_never_asserted(lab_cls, preset, capsys):
    lab = lab_cls(preset=preset)
    assert lab.preset == preset and lab.uncalibrated and lab.calibration is None
    assert lab.notice is None and capsys.readouterr().out == ""  # asked for: no fallback
    cpu = lab_cls.presets["cpu"].calibration
    assert lab.compare_with == ("cpu", cpu)
    lab.conditions = lambda m: {"the claim": False}  # a claim that fails on every seed
    verdict = fake_result(lab, cpu).check()
    assert not verdict.passed  # honest: the claim did not hold
    assert verdict.summary.endswith("; not calibrated, so not asserted")
    assert verdict.assert_holds() is verdict  # ... and nothing is asserted
    out = capsys.readouterr().out
    assert out.startswith(f"Not asserted: preset '{preset}' is not calibrated (DOES NOT HOLD: "
                          "in 0 of")
    assert "compare them with the calibrated 'cpu' preset's" in out
    text = str(verdict)
    assert f"Not calibrated: your numbers are new. Preset '{preset}' was never measured" in text
    assert f"compare with the calibrated 'cpu' preset ({cpu.describe()}; {cpu.wall})" in text
    name = cpu.names[0]
    assert f"({name}): " + " | ".join(f"{cpu.value(s, name):.3f}" for s in cpu.seeds) in text
    page = verdict._repr_html_()
    assert "<b>Not calibrated:</b> your numbers are new" in page
    assert "<th>calibrated number</th>" in page and len(page.split("<details>")) == 2
    # the calibrated preset asserts the same failing claim
    calibrated = lab_cls(preset="cpu")
    calibrated.conditions = lab.conditions
    with pytest.raises(AssertionError, match="DOES NOT HOLD"):
        fake_result(calibrated, cpu).check().assert_holds()


@pytest.mark.parametrize("lab_cls", LABS, ids=ids)
def test_auto_on_a_gpu_runs_the_calibrated_cpu_experiment_and_says_so(lab_cls, gpu_machine,
                                                                        capsys):
    lab = lab_cls()
    name = lab_cls.__name__
    assert lab.preset == "cpu" and not lab.uncalibrated
    assert lab.calibration is lab_cls.presets["cpu"].calibration
    assert lab.notice == (
        f"{name}: this machine's preset, 'gpu', is not calibrated, so the lab runs its "
        f"calibrated 'cpu' experiment (measured on {lab.calibration.describe()}; on a GPU it "
        f"only runs faster) and checks that. {name}(preset='gpu') runs the classroom-scale "
        "experiment, labelled 'not calibrated' and not asserted.")
    assert capsys.readouterr().out == lab.notice + "\n"  # said once, as the lab is built
    cpu = lab_cls(preset="cpu")  # the same experiment as on a CPU: arms, sizes, check
    assert (lab.arms, lab.checked, lab.extra) == (cpu.arms, cpu.checked, cpu.extra)
    assert list(lab.watch) == list(cpu.watch)
    for arm in lab.arms:
        cfg = lab.config(arm, seed=1)
        assert cfg.preset == "cpu" and cfg.resolved().preset == "cpu"
        assert cfg.resolved().to_dict() == cpu.config(arm, seed=1).resolved().to_dict()
    # "auto" spelt out, with other changes, chooses the same; the gpu preset when asked
    assert lab_cls(preset="auto", lr=1e-4).config(next(iter(lab.arms))).preset == "cpu"
    assert lab_cls(preset="gpu").preset == "gpu"


def test_a_lab_without_any_calibration_asserts_on_every_preset(gpu_machine, capsys):
    class Own(Lab):  # a lab of your own: no preset calibrated, so nothing to fall back to
        claim = "A claim."
        base = RunConfig(preset="auto")
        presets = {"cpu": Preset(arms={"a": {}}), "gpu": Preset(arms={"a": {}, "b": {}})}

        def conditions(self, m):
            return {"the claim": False}

    lab = Own()
    assert lab.preset == "gpu" and lab.notice is None and not lab.uncalibrated
    assert capsys.readouterr().out == ""
    verdict = fake_result(lab, Calibration("", date(2026, 1, 1), {0: {"x": 1.0}})).check()
    assert "calibrated" not in str(verdict)
    with pytest.raises(AssertionError, match="DOES NOT HOLD: in 0 of 1 seeds"):
        verdict.assert_holds()


def test_a_table_of_measurements_becomes_numbers_per_seed():
    assert by_seed({"a": (1, 2, None), "b": (0.5, None, 0.25)}) == {
        0: {"a": 1.0, "b": 0.5}, 1: {"a": 2.0}, 2: {"b": 0.25}}
    with pytest.raises(ValueError, match="a: 2 values for seeds"):
        by_seed({"a": (1, 2)})
    cal = Calibration("here", date(2026, 11, 26), by_seed({"a": (1, 2, 3)}))
    assert cal.describe() == "here, 2026-11-26, seeds 0-2" and cal.names == ["a"]
    assert Calibration("here", date(2026, 11, 26), {0: {"a": 1}}).describe().endswith("seed 0")
