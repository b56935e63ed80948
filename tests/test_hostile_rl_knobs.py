"""RL runs configured from outside Python: the ``rl`` section at the config door.

``rl`` is switched on with ``rl=True`` / ``{}`` / ``--set rl=on`` and off with ``rl=None`` /
``--set rl=off``; a dict becomes an ``RLConfig`` wherever it is given (the constructor,
``replace``, an attribute), so nothing downstream (``resolved``, the engine, the panel) ever
finds a dict. An RL knob on a supervised run is refused with the way to switch RL on: a knob
never changes the trainer by itself.
"""

from __future__ import annotations

import copy
import json

import pytest

from ftlab.cli import build_parser, config_from_args, main
from ftlab.config import RL_PRESETS, RLConfig, RunConfig
from ftlab.errors import ConfigError

BASE = RunConfig(model="tiny", preset="cpu")


def cli(*extra: str) -> RunConfig:
    args = build_parser().parse_args(["train", "--model", "tiny", "--preset", "cpu", *extra])
    return config_from_args(args)


# -- reaching RL knobs -------------------------------------------------------------------

def test_rl_knobs_are_reachable_from_set_and_replace():
    by_cli = cli("--set", "rl=on", "--set", "rl.kl=0.5", "--set", "rl.generations=2")
    by_replace = BASE.replace(rl=True, **{"rl.kl": 0.5, "rl.generations": 2})
    assert isinstance(by_cli.rl, RLConfig) and (by_cli.rl.kl, by_cli.rl.generations) == (0.5, 2)
    assert by_cli.resolved().hash() == by_replace.resolved().hash()


def test_the_switch_may_come_after_its_knobs():
    assert cli("--set", "rl.kl=0.5", "--set", "rl=on").rl.kl == 0.5
    assert BASE.replace(**{"rl.kl": 0.5}, rl=True).rl.kl == 0.5


@pytest.mark.parametrize("word", ["on", "true", "ON", "{}", '"on"'])
def test_rl_is_switched_on_by_any_of_its_words(word):
    cfg = cli("--set", f"rl={word}").resolved()
    assert isinstance(cfg.rl, RLConfig)
    assert cfg.rl.generations == RL_PRESETS["cpu"]["rl.generations"]  # the RL preset


def test_an_rl_knob_on_a_supervised_run_says_how_to_switch_rl_on():
    for make in (lambda: BASE.replace(**{"rl.kl": 0.5}), lambda: cli("--set", "rl.kl=-1")):
        with pytest.raises(ConfigError) as e:
            make()
        text = str(e.value)
        assert e.value.field == "rl.kl" and "This run has no RL section" in text
        assert "config.replace(rl=True, **{'rl.kl':" in text and "--set rl=on" in text
        assert "not a knob of this run" not in text


def test_a_bad_rl_knob_through_the_cli_names_its_range(capsys):
    code = main(["train", "--model", "tiny", "--json", "--set", "rl=on", "--set", "rl.kl=-1"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["type"] == "ConfigError"
    assert out["error"].startswith("rl.kl = -1 is not allowed: expected a number > 0.0")


# -- a dict for rl becomes an RLConfig at the door -----------------------------------------

@pytest.mark.parametrize("make", [
    lambda: BASE.replace(rl={"kl": 0.5}),
    lambda: RunConfig(model="tiny", preset="cpu", rl={"kl": 0.5}),
    lambda: RunConfig.from_dict({**BASE.to_dict(), "rl": {"kl": 0.5}}),
    lambda: cli("--set", 'rl={"kl": 0.5}'),
], ids=["replace", "constructor", "from_dict", "cli"])
def test_a_dict_for_rl_becomes_an_rl_config(make):
    cfg = make()
    assert type(cfg.rl) is RLConfig and cfg.rl.kl == 0.5
    assert cfg.resolved().rl.reward == RL_PRESETS["cpu"]["rl.reward"]


def test_a_dict_set_as_an_attribute_becomes_an_rl_config_too():
    cfg = copy.deepcopy(BASE)
    cfg.rl = {"kl": 0.5}
    assert type(cfg.rl) is RLConfig and cfg.resolved().rl.kl == 0.5
    cfg.rl = None
    assert cfg.rl is None and cfg.resolved().rl is None
    cfg.train = {"max_steps": 3}
    assert cfg.train.max_steps == 3


def test_a_bad_knob_in_an_rl_dict_is_a_config_error_not_an_attribute_error():
    with pytest.raises(ConfigError, match=r"^rl\.kl = -1 is not allowed: expected a number"):
        RunConfig(model="tiny").replace(rl={"kl": -1}).resolved()
    with pytest.raises(ConfigError, match=r"^rl\.nosuch = 1 is not allowed"):
        BASE.replace(rl={"nosuch": 1})
    cfg = copy.deepcopy(BASE)
    with pytest.raises(ConfigError, match=r"^rl = 5 is not allowed: expected on \(true\)"):
        cfg.rl = 5


def test_a_panel_on_a_config_whose_rl_came_as_a_dict_builds_rl_runs():
    from ftlab.widgets import ControlPanel

    cfg = copy.deepcopy(BASE)
    cfg.rl = {"kl": 0.5}
    panel = ControlPanel(cfg, knobs=["lr", "steps"], samples=False)
    built = panel.build_config()
    assert type(built.rl) is RLConfig and built.rl.kl == 0.5


# -- switching RL off again ----------------------------------------------------------------

@pytest.mark.parametrize("off", [None, False, "off", "none"])
def test_rl_can_be_switched_off_again(off):
    cfg = RunConfig(rl={}).replace(rl=off)
    assert cfg.rl is None and "rl.kl" not in cfg.knob_names()


@pytest.mark.parametrize("off", ["off", "null", "false"])
def test_rl_can_be_switched_off_from_the_cli(off):
    cfg = cli("--set", "rl=on", "--set", f"rl={off}").resolved()
    assert cfg.rl is None and cfg.hash() == BASE.resolved().hash()


def test_a_word_that_is_no_switch_is_refused_with_the_words_there_are():
    with pytest.raises(ConfigError) as e:
        BASE.replace(rl="maybe")
    assert str(e.value).startswith("rl = 'maybe' is not allowed: expected on (true), off")
    assert "--set rl=on" in str(e.value) and "--set rl=off" in str(e.value)


def test_a_grpo_run_configured_only_from_the_command_line_trains(tmp_path, capsys):
    """The issue's `ftlab train --set rl...` end to end, on the tiny model: RL switched on
    after its knobs, and an RL knob given as a whole float."""
    code = main(["train", "--model", "tiny", "--preset", "cpu", "--steps", "1", "--json",
                 "--size", "10", "--batch-size", "2", "--samples", "0",
                 "--set", "rl.generations=2.0", "--set", "rl.max_completion_length=6",
                 "--set", "rl.kl=0.5", "--set", "rl=on", "--runs-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "completed", out
    saved = json.loads((tmp_path / out["run_dir"].split("/")[-1] / "config.json").read_text())
    assert saved["rl"]["kl"] == 0.5 and saved["rl"]["generations"] == 2
    assert type(saved["rl"]["generations"]) is int
