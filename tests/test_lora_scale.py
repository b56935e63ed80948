"""The three ways notebook 11 sets LoRA's scale as the rank changes: each config reaches
PEFT's layers with the scale it promises, and all three agree at the base rank."""

import math

import pytest

import ftlab
from ftlab.engine import build_model
from ftlab.errors import ConfigError
from ftlab.instruments.adapters import lora_layers
from ftlab.instruments.lora import SCALINGS, scaled

BASE = ftlab.RunConfig(model="tiny", method="lora", preset="cpu")  # r = 8, alpha = 16


def peft_scale(cfg: ftlab.RunConfig) -> float:
    """The scaling PEFT's LoRA layers multiply B·A by, read from the built model."""
    model, _ = build_model(cfg.resolved())
    scales = {layer.scaling["default"] for layer in lora_layers(model).values()}
    assert len(scales) == 1, scales
    return scales.pop()


@pytest.mark.parametrize(("rule", "r", "expected"), [
    ("fixed", 1, 16.0), ("fixed", 64, 0.25),
    ("linear", 1, 2.0), ("linear", 64, 2.0),
    ("rslora", 1, 2 * math.sqrt(8)), ("rslora", 64, 2 * math.sqrt(8) / 8),
])
def test_each_rule_reaches_peft_with_the_scale_it_promises(rule, r, expected):
    cfg = scaled(BASE, rule, r)
    assert cfg.method.r == r
    assert cfg.method.scale == pytest.approx(expected)
    assert peft_scale(cfg) == pytest.approx(expected)


@pytest.mark.parametrize("rule", list(SCALINGS))
def test_at_the_base_rank_every_rule_keeps_the_base_scale(rule):
    assert scaled(BASE, rule, 8).method.scale == pytest.approx(BASE.method.scale) == 2.0


def test_rslora_is_off_by_default_and_a_knob_of_qlora_too():
    assert BASE.method.rslora is False
    assert ftlab.RunConfig(method="qlora").replace(**{"method.rslora": True}).method.rslora


def test_a_rule_or_method_that_does_not_exist_says_which_field():
    with pytest.raises(ConfigError, match="rule = 'sqrt' is not allowed: expected one of fixed"):
        scaled(BASE, "sqrt", 4)
    with pytest.raises(ConfigError, match="method = 'prefix' is not allowed"):
        scaled(BASE.replace(method="prefix"), "fixed", 4)
    with pytest.raises(ConfigError, match="method.rslora"):
        BASE.replace(**{"method.rslora": "yes"}).validate()


def test_rslora_is_left_out_of_the_config_while_off_so_earlier_runs_keep_their_hash():
    on = BASE.replace(**{"method.rslora": True})
    assert "rslora" not in BASE.to_dict()["method"] and on.to_dict()["method"]["rslora"] is True
    assert on.hash() != BASE.hash()
    assert ftlab.RunConfig.from_dict(on.to_dict()) == on
    assert ftlab.RunConfig.from_dict(BASE.to_dict()).hash() == BASE.hash()
