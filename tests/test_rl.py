"""Policy-optimisation (GRPO) runs are runs: config, events, folder, Stop, panel, and the gold
reward watched but never optimised."""

import json
import math

import pytest

from ftlab.config import RL_PRESETS, RLConfig, RunConfig
from ftlab.engine import StopFlag, train
from ftlab.errors import ConfigError
from ftlab.rlhf import GoldReward
from ftlab.runs import find_run, load_run

STEP_KEYS = {"rl.proxy", "rl.gold", "rl.kl_measured", "rl.length", "rl.length_tokens",
             "rl.optimised"}


def policy(model: str = "tiny", **changes) -> RunConfig:
    """A small policy run: 2 prompts x 2 completions a step, short completions."""
    base = {"size": 10, "steps": 2, "batch_size": 2, "rl.generations": 2,
            "rl.max_completion_length": 16 if model != "tiny" else 6, "eval_every": 1,
            "eval.samples": 1}
    return RunConfig(model=model, preset="cpu", rl=RLConfig()).replace(**{**base, **changes})


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize("knob, value", [("kl", -0.1), ("kl", 0.0), ("generations", 1),
                                         ("reward", "helpfulness"), ("temperature", 0.0),
                                         ("length_penalty", -0.01)])
def test_rl_knobs_are_validated_like_every_knob(knob, value):
    cfg = RunConfig(rl=RLConfig(**{knob: value}))
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == f"rl.{knob}"
    assert f"rl.{knob}" in str(err.value)


def test_rl_preset_fills_the_policy_sizes_and_leaves_supervised_runs_alone():
    cpu = RunConfig(preset="cpu", rl=RLConfig()).resolved()
    for dotted, value in RL_PRESETS["cpu"].items():
        section, name = dotted.split(".")
        assert getattr(getattr(cpu, section), name) == value
    sft = RunConfig(preset="cpu").resolved()
    assert sft.rl is None and sft.train.batch_size != cpu.train.batch_size
    # Knobs by short and dotted name; the section survives a trip through config.json.
    changed = cpu.replace(kl=0.1, **{"rl.generations": 8})
    assert changed.rl.kl == 0.1 and changed.rl.generations == 8
    assert "rl.kl" in changed.knob_names()
    back = RunConfig.from_dict(json.loads(json.dumps(changed.to_dict())))
    assert back == changed and back.hash() == changed.hash()


def test_rl_run_refuses_what_it_cannot_do_before_loading_a_model(runs_dir):
    with pytest.raises(ConfigError) as err:
        train(policy(**{"data.path": "rows.jsonl"}), progress=False)
    assert err.value.field == "data.path"
    with pytest.raises(ConfigError) as err:
        train(policy(batch_size=11), progress=False)
    assert err.value.field == "train.batch_size"
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


# ------------------------------------------------------------------------- the tiny model


def test_gold_is_logged_but_never_optimised(runs_dir, monkeypatch):
    # The tiny model never answers correctly (gold is 0 everywhere), so give gold a score
    # that varies: whatever gold says, the optimised reward is the proxy alone.
    monkeypatch.setattr(GoldReward, "score_one",
                        lambda self, completion, answers: (len(completion) % 7) / 7)
    run = train(policy(), progress=False)
    golds = [s["metrics"]["rl.gold"] for s in run.steps]
    assert any(g > 0 for g in golds)
    for s in run.steps:
        m = s["metrics"]
        assert m["rl.optimised"] == pytest.approx(m["rl.proxy"], abs=1e-6)


def test_length_penalty_enters_the_optimised_reward(runs_dir):
    run = train(policy(**{"rl.length_penalty": 0.01}), progress=False)
    for s in run.steps:
        m = s["metrics"]
        assert m["rl.length"] > 0
        assert m["rl.optimised"] == pytest.approx(m["rl.proxy"] - 0.01 * m["rl.length"], abs=1e-5)


def test_learned_proxy_is_trained_once_and_optimised(runs_dir):
    cfg = policy(**{"rl.reward": "learned"})
    run = train(cfg, progress=False)
    assert run.final["proxy_reward"] == "learned_rm"
    for s in run.steps:
        assert s["metrics"]["rl.optimised"] == pytest.approx(s["metrics"]["rl.proxy"], abs=1e-6)
    from ftlab.rlhf import proxy as rl

    trained = dict(rl._LEARNED)
    train(cfg.replace(kl=0.05), progress=False)  # same reward model config: reused
    assert rl._LEARNED == trained


def test_control_panel_and_dashboard_show_a_policy_run(runs_dir):
    from ftlab.widgets import ControlPanel

    panel = ControlPanel(policy(), knobs=("rl.kl", "steps", "rl.length_penalty"),
                         metrics={"reward": ["rl.proxy", "rl.gold"], "KL": ["rl.kl_measured"],
                                  "length (words)": ["rl.length"]}, runs_dir=runs_dir)
    panel.set(**{"rl.kl": 0.05})
    run = panel.run(steps=2)
    assert run.status == "completed" and run.config.rl.kl == 0.05
    points = panel.dashboard.points
    for name in ("rl.proxy", "rl.gold", "rl.kl_measured", "rl.length"):
        assert points[name][0] == [1, 2]
    assert "val loss" not in points  # a policy run has no validation loss: no loss plot
    assert "proxy" in panel.status_text and "gold" in panel.status_text
    # The panel's config (unresolved) finds the same run in the cache.
    assert find_run(panel.config, runs_dir).path == run.path


def test_evaluators_run_on_the_policy_at_start_and_end(runs_dir):
    seen = []

    def words_of_a_fixed_answer(model, tok, ctx):
        seen.append((ctx.step, ctx.full, model.training))
        return {"steps_seen": ctx.step}

    run = train(policy(eval_every=5), evaluators={"probe": words_of_a_fixed_answer},
                progress=False)
    assert seen == [(0, True, False), (2, True, False)]
    assert [e["step"] for e in run.evals] == [0, 2]
    assert all(math.isnan(e["val_loss"]) for e in run.evals)
    assert run.final["final_metrics"] == {"probe.steps_seen": 2.0}
    assert load_run(run.path).evals[-1]["metrics"] == {"probe.steps_seen": 2.0}


# --------------------------------------------------------------------- the embedded model


@pytest.mark.slow
def test_grpo_run_of_the_real_model_is_a_run(runs_dir):
    events = []
    run = train(policy("smollm2-135m"), on_event=events.append, progress=False)

    # Events: start, a step per GRPO step with the RL metrics, samples, end.
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2]
    for e in steps:
        assert STEP_KEYS <= set(e.metrics)
        assert all(math.isfinite(v) for v in e.metrics.values())
        assert e.metrics["rl.length"] > 0 and 0 <= e.metrics["rl.gold"] <= 1
        # The optimised reward is the proxy alone (gold has weight 0).
        assert e.metrics["rl.optimised"] == pytest.approx(e.metrics["rl.proxy"], abs=1e-6)
    assert steps[0].metrics["rl.kl_measured"] == pytest.approx(0.0, abs=1e-6)  # policy = reference
    assert steps[1].metrics["rl.kl_measured"] > 0  # one update later it has moved
    samples = [e for e in events if e.kind == "samples"]
    assert [e.step for e in samples] == [0, 1]  # step 0: the base model's completions
    row = samples[0].samples[0]
    assert {"question", "expected", "answer", "stopped", "proxy", "gold", "words"} <= set(row)
    assert row["answer"].strip()

    # Final figures and the folder.
    f = run.final
    assert f["steps"] == 2 and run.status == "completed"
    assert f["first_proxy"] == steps[0].metrics["rl.proxy"]
    assert f["last_gold"] == steps[-1].metrics["rl.gold"]
    assert f["peak_proxy"] == max(e.metrics["rl.proxy"] for e in steps)
    for key in ("first_gold", "peak_gold", "last_length", "last_kl_measured", "wall_s",
                "step_time_s"):
        assert f[key] is not None
    back = load_run(run.path)
    for name in ("status", "steps", "evals", "samples", "final", "cache_key", "config"):
        assert getattr(back, name) == getattr(run, name), name
    result = json.loads((run.path / "result.json").read_text())
    assert result["cache_key"] == run.cache_key and result["final"]["steps"] == 2
    assert back.curve("rl.gold") == ([1, 2], [e.metrics["rl.gold"] for e in steps])

    # Stop: a flag set at step 1 ends the run after that step.
    stop = StopFlag()
    stopped = train(policy("smollm2-135m", steps=3), stop=stop, progress=False,
                    on_event=lambda e: stop.set() if e.kind == "step" and e.step == 1 else None)
    assert stopped.status == "stopped" and stopped.final["steps"] == 1
    assert load_run(stopped.path).status == "stopped" and len(stopped.steps) == 1


def test_knob_names_and_measured_metric_names_never_collide():
    """``rl.kl`` is the KL coefficient a learner sets; what the run measures is named apart."""
    from ftlab.engine.policy import STEP_METRICS

    knobs = policy().knob_names()
    assert not set(STEP_METRICS.values()) & knobs
    assert "rl.kl" in knobs and "rl.kl_measured" in STEP_METRICS.values()


@pytest.mark.parametrize("changes, field", [
    ({"rl.kl": 0.1}, "rl.kl"),  # an RL knob on a supervised run
    ({"rl": "yes"}, "rl"),
    ({"rl": {"kl": 0.1, "klcoef": 1}}, "klcoef"),
])
def test_the_rl_door_refuses_with_the_field_and_the_fix(changes, field):
    from ftlab.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        RunConfig(model="tiny", preset="cpu").replace(**changes)
    assert field in str(err.value) and ("rl=True" in str(err.value) or "rl" in str(err.value))


def test_rl_true_makes_a_policy_run_and_false_a_supervised_one():
    cfg = RunConfig(model="tiny", preset="cpu").replace(rl=True, **{"rl.kl": 0.2})
    assert cfg.rl is not None and cfg.rl.kl == 0.2
    assert cfg.replace(rl=False).rl is None
