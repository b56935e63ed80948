"""The labs base on the tiny model: arms, seeds, the run cache and a per-seed verdict."""

import re
import time

import pytest

import ftlab
from ftlab.errors import ConfigError
from ftlab.labs import Lab
from ftlab.labs.base import Html, Preset, rows_html


class LearningRateLab(Lab):
    """A toy lesson: a higher learning rate lowers validation loss more in a few steps."""

    title = "toy"
    claim = "In 4 steps, lr 3e-3 lowers validation loss more than lr 1e-5."
    base = ftlab.RunConfig(model="tiny", preset="cpu").replace(
        size=20, steps=4, batch_size=4, eval_every=2, **{"eval.samples": 0})
    arms = {"slow": {"lr": 1e-5}, "fast": {"lr": 3e-3}}
    watch = {"norm": lambda model, tok, ctx: {"step": float(ctx.step)}}

    def measure(self, runs):
        return {arm: r.final["final_val_loss"] for arm, r in runs.items()}

    def conditions(self, m):
        return {"fast learns more": m["fast"] < m["slow"]}


def test_a_sweep_trains_once_then_loads_every_run_from_the_cache(runs_dir):
    lab = LearningRateLab()
    t0 = time.perf_counter()
    first = lab.sweep(seeds=(0, 1), progress=False)
    trained_s = time.perf_counter() - t0
    assert first.trained == 4 and set(first.runs) == {(a, s) for a in ("slow", "fast")
                                                      for s in (0, 1)}
    t0 = time.perf_counter()
    again = lab.sweep(seeds=(0, 1), progress=False)
    cached_s = time.perf_counter() - t0
    assert again.trained == 0, "a second sweep must not train"
    assert all(r.from_cache for r in again.runs.values())
    assert {k: r.path for k, r in again.runs.items()} == {k: r.path for k, r in first.runs.items()}
    assert cached_s < trained_s / 4, (cached_s, trained_s)
    print(f"sweep of 4 runs: trained {trained_s:.1f} s, from the cache {cached_s:.2f} s")

    verdict = again.check()
    assert [r["seed"] for r in verdict.rows] == [0, 1]
    assert verdict.conditions == ["fast learns more"]
    assert all(isinstance(r["slow"], float) and isinstance(r["holds"], bool)
               for r in verdict.rows)
    assert verdict.passed and verdict.holds_in == 2 and "HOLDS: in 2 of 2 seeds" in str(verdict)
    assert "<table>" in verdict._repr_html_()
    # evaluators are namespaced and stored with the run
    assert again.runs[("fast", 0)].metric("norm.step") == 4.0


def test_refresh_trains_again_and_a_failed_claim_is_reported_per_seed(runs_dir):
    class Backwards(LearningRateLab):
        def conditions(self, m):
            return {"slow learns more": m["slow"] < m["fast"]}

    lab = Backwards()
    result = lab.sweep(seeds=(0,), progress=False)
    verdict = result.check()
    assert not verdict.passed and verdict.rows[0]["holds"] is False
    with pytest.raises(AssertionError, match="DOES NOT HOLD: in 0 of 1 seeds"):
        verdict.assert_holds()
    assert lab.run("fast", 0, refresh=True, progress=False).from_cache is False


def test_an_unknown_arm_is_a_config_error():
    with pytest.raises(ConfigError, match="arm = 'medium' is not allowed: expected one of "
                       "'slow', 'fast'"):
        LearningRateLab().config("medium")


def test_the_lab_panel_builds_the_same_config_and_reuses_the_run(runs_dir):
    lab = LearningRateLab()
    stored = lab.run("fast", 0, progress=False)
    panel = lab.panel("fast", reuse=True)
    run = panel.run()
    assert run.from_cache and run.path == stored.path
    assert panel.dashboard.points["val loss"][0] == [0, 2, 4]


class PresetLab(LearningRateLab):
    """The toy lesson declared per preset: a checked pair and an extra arm."""

    presets = {"cpu": Preset(base={"steps": 2, "eval_every": 2},
                             arms={"slow": {"lr": 1e-5}, "fast": {"lr": 3e-3},
                                   "faster": {"lr": 1e-2}},
                             checked=("slow", "fast"), extra=("faster",)),
               "gpu": Preset(base={"steps": 6}, arms={"slow": {"lr": 1e-5}})}


def test_the_base_resolves_the_preset_and_the_callers_changes_win(monkeypatch):
    lab = PresetLab()
    assert lab.preset == "cpu" and list(lab.arms) == ["slow", "fast", "faster"]
    assert (lab.checked, lab.extra) == (("slow", "fast"), ("faster",))
    assert lab.config("fast").train.max_steps == 2 and lab.watch == {}
    assert list(PresetLab(preset="gpu").arms) == ["slow"]
    assert PresetLab(preset="gpu").config("slow").train.max_steps == 6
    for spelling in ("lr", "train.learning_rate"):
        changed = PresetLab(**{spelling: 5e-4})
        assert {changed.config(a).train.learning_rate for a in changed.arms} == {5e-4}
    assert PresetLab(**{"train.max_steps": 3}).config("slow").train.max_steps == 3
    # checked arms on every seed, extra arms on the first (more=False: not at all)
    calls = []
    monkeypatch.setattr(lab, "run", lambda arm, seed, **kw: calls.append((arm, seed)))
    lab.sweep(seeds=(0, 1), progress=False)
    assert calls == [("slow", 0), ("fast", 0), ("slow", 1), ("fast", 1), ("faster", 0)]
    calls.clear()
    lab.sweep(seeds=(0, 1), more=False, progress=False)
    assert calls == [("slow", 0), ("fast", 0), ("slow", 1), ("fast", 1)]
    calls.clear()
    lab.sweep(seeds=(1,), arms=["faster"], progress=False)
    assert calls == [("faster", 1)]


def test_one_table_writer_escapes_text_and_keeps_html():
    page = rows_html([{"a": "<b>", "b": Html("<i>x</i>"), "c": 0.5, "d": True}],
                     style={"a": "text-align:left", "b": ""})
    assert "<td style='text-align:left'>&lt;b&gt;</td><td><i>x</i></td>" in page
    assert "<td style='text-align:right'>0.500</td>" in page and ">yes</td>" in page
    assert page.count("<tr>") == 2 and rows_html([]).count("<tr>") == 1


def test_a_verdict_shows_its_conditions_first_and_every_number_one_click_away():
    from ftlab.labs import Verdict

    conds = ["aggressive: task learned", "gentle: keeps most of the base pass rate"]
    rows = [{"seed": s, **{f"aggressive.n{i}": i / 7 for i in range(20)},
             conds[0]: True, conds[1]: s != 2, "holds": s != 2} for s in (0, 1, 2)]
    verdict = Verdict("A claim.", rows, conds, 2, read=["aggressive.n3"])
    page = verdict._repr_html_()
    short, details = page.split("<details>")
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", short).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["condition", "seed 0", "seed 1", "seed 2"]
    assert all(c in short for c in conds) and "aggressive.n3" in short  # the number read
    assert "aggressive.n4" not in short and "aggressive.n19" in details  # the rest: a click
    assert ">NO</b>" in short and short.index("HOLDS: in 2 of 3") < short.index("<table>")
    assert "<summary>All 20 numbers measured, per seed</summary>" in details
    text = str(verdict)
    assert "  gentle: keeps most of the base pass rate: yes | yes | NO" in text
    assert "aggressive.n3: 0.429 | 0.429 | 0.429" in text and "n19" not in text
