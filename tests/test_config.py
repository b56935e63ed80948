"""A run is one config; bad values are refused with a message that names field and range."""

import pytest

import ftlab
from ftlab import ConfigError, RunConfig
from ftlab.knobs import knobs_of


def resolved(**changes):
    return RunConfig().replace(**changes).resolved("cpu")


@pytest.mark.parametrize(
    ("changes", "field", "phrase"),
    [
        ({"method": "adapterz"}, "method", "one of 'full', 'lora', 'qlora', 'prefix', 'prompt'"),
        ({"r": 0}, "method.r", ">= 1"),
        ({"r": -4}, "method.r", ">= 1"),
        ({"lr": 0.0}, "train.learning_rate", "> 0.0"),
        ({"lr": -1e-3}, "train.learning_rate", "> 0.0"),
        ({"batch_size": 0}, "train.batch_size", ">= 1"),
        ({"steps": 2.5}, "train.max_steps", "whole number"),
        ({"size": 3}, "data.size", ">= 10"),
        ({"data.corruption_rate": 1.5}, "data.corruption_rate", "<= 1.0"),
        ({"format": "yaml"}, "data.format", "one of 'chat'"),
        ({"task": "poetry"}, "data.task", "one of 'arithmetic'"),
        ({"preset": "tpu"}, "preset", "one of 'auto', 'cpu', 'gpu'"),
    ],
)
def test_bad_values_name_the_field_and_what_is_allowed(changes, field, phrase):
    with pytest.raises(ConfigError) as err:
        resolved(**changes)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field} = ")
    assert phrase in str(err.value)


def test_unknown_knob_lists_the_knobs_of_the_method():
    with pytest.raises(ConfigError, match="Method 'prompt' has: num_virtual_tokens"):
        RunConfig(method=ftlab.PromptTuning()).replace(r=8)


def test_error_explains_the_knob_with_its_help_text():
    with pytest.raises(ConfigError, match="LoRA rank"):
        resolved(r=0)


def test_presets_fill_only_what_is_unset():
    cpu = resolved()
    assert cpu.preset == "cpu" and cpu.train.max_steps == ftlab.PRESETS["cpu"]["train.max_steps"]
    assert cpu.train.learning_rate == ftlab.Lora.default_lr
    mine = resolved(steps=7, lr=3e-4)
    assert (mine.train.max_steps, mine.train.learning_rate) == (7, 3e-4)
    gpu = RunConfig(preset="gpu").resolved("cpu")
    assert gpu.train.max_steps == ftlab.PRESETS["gpu"]["train.max_steps"]


def test_same_config_same_hash_and_round_trip():
    a, b = resolved(r=16), resolved(r=16)
    assert a.hash() == b.hash() != resolved(r=32).hash()
    back = RunConfig.from_dict(a.to_dict())
    assert back.hash() == a.hash() and back.method == a.method


def test_replace_switches_method_and_keeps_the_rest():
    cfg = RunConfig().replace(steps=5).replace(method="prefix", num_virtual_tokens=7)
    assert isinstance(cfg.method, ftlab.PrefixTuning)
    assert cfg.method.num_virtual_tokens == 7 and cfg.train.max_steps == 5


def test_knob_metadata_is_what_widgets_read():
    lr = knobs_of(ftlab.TrainConfig)["learning_rate"]
    assert lr["log"] and lr["low"] == 0.0 and lr["low_open"]
    assert knobs_of(ftlab.Lora)["r"]["default"] == 8
    assert set(knobs_of(ftlab.QLora)) >= {"r", "alpha", "quant_type", "double_quant"}
