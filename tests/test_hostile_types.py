"""Wrong types at the knob door: one decision for every whole-number knob, on every path.

A float that is a whole number (``steps=2.0``, from JSON, ``--set`` or a division) is that
int: it trains, and it names and finds the same cached run as ``2``. A float with a fraction,
``inf``, ``nan`` and ``True`` are refused with the same ``ConfigError`` whichever door they
came through (``RunConfig(...)``, ``replace``, an attribute, ``from_dict``, ``--set``, a
flag). Texts a run cannot use (an empty ``init_text``, a name longer than any file system
allows, an empty knob name) are refused there too, before anything heavy starts.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ftlab
from ftlab.cli import build_parser, config_from_args
from ftlab.config import DataConfig, EvalConfig, RLConfig, RunConfig, TrainConfig
from ftlab.errors import ConfigError
from ftlab.knobs import knobs_of
from ftlab.methods import METHODS

BASE = RunConfig(model="tiny", preset="cpu")
SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "rl": RLConfig}


def _whole(meta: dict) -> bool:
    types = {t.strip() for t in meta["type"].split("|")}
    return "int" in types and "float" not in types


# (dotted path, method name, metadata) of every whole-number knob of every config section
# and of every method; generated, so a knob added later is covered without a new test.
INT_KNOBS = sorted(
    [(name, "lora", meta) for name, meta in knobs_of(RunConfig).items() if _whole(meta)]
    + [(f"{section}.{name}", "lora", meta) for section, cls in SECTIONS.items()
       for name, meta in knobs_of(cls).items() if _whole(meta)]
    + [(f"method.{name}", method, meta) for method, cls in METHODS.items()
       for name, meta in knobs_of(cls).items() if _whole(meta)
       and not (method == "qlora" and name in knobs_of(METHODS["lora"]))],
    key=lambda k: (k[0], k[1]))
IDS = [f"{path}[{method}]" if path.startswith("method.") else path
       for path, method, _ in INT_KNOBS]


def test_every_section_has_whole_number_knobs_here():
    covered = {path.split(".")[0] for path, _, _ in INT_KNOBS if "." in path}
    assert covered == {"data", "train", "eval", "rl", "method"}
    assert {"seed", "data.size", "train.max_steps", "eval.every", "rl.generations",
            "method.r", "method.num_virtual_tokens"} <= {p for p, _, _ in INT_KNOBS}


def base_for(path: str, method: str) -> RunConfig:
    cfg = BASE.replace(method=method)
    return cfg.replace(rl=True) if path.startswith("rl.") else cfg


# -- the doors: each gives the knob `value` and returns the resolved config ------------

def via_replace(path: str, method: str, value) -> RunConfig:
    return base_for(path, method).replace(**{path: value}).resolved()


def via_constructor(path: str, method: str, value) -> RunConfig:
    kwargs = {"model": "tiny", "preset": "cpu", "method": method}
    if "." not in path:
        kwargs[path] = value
    else:
        section, name = path.split(".")
        kwargs[section] = ({"name": method, name: value} if section == "method"
                           else {name: value})
    return RunConfig(**kwargs).resolved()


def via_attribute(path: str, method: str, value) -> RunConfig:
    cfg = copy.deepcopy(base_for(path, method))
    *section, name = path.split(".")
    setattr(getattr(cfg, section[0]) if section else cfg, name, value)
    return cfg.resolved()


def via_from_dict(path: str, method: str, value) -> RunConfig:
    d = base_for(path, method).to_dict()
    *section, name = path.split(".")
    (d[section[0]] if section else d)[name] = value
    return RunConfig.from_dict(json.loads(json.dumps(d))).resolved()


def via_cli(path: str, method: str, value) -> RunConfig:
    argv = ["train", "--model", "tiny", "--preset", "cpu", "--method", method]
    argv += ["--set", "rl=on"] if path.startswith("rl.") else []
    args = build_parser().parse_args([*argv, "--set", f"{path}={json.dumps(value)}"])
    return config_from_args(args).resolved()


DOORS = [via_replace, via_constructor, via_attribute, via_from_dict, via_cli]


def knob_value(cfg: RunConfig, path: str):
    *section, name = path.split(".")
    return getattr(getattr(cfg, section[0]) if section else cfg, name)


def refusal(door, path: str, method: str, value) -> str:
    with pytest.raises(ConfigError) as e:
        door(path, method, value)
    assert e.value.field == path, str(e.value)
    return str(e.value)


@pytest.mark.parametrize(("path", "method", "meta"), INT_KNOBS, ids=IDS)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_whole_float_is_that_int_on_every_door(path, method, meta, data):
    n = data.draw(st.integers(int(meta["low"]), min(int(meta["high"]), 10_000)), label="n")
    door = data.draw(st.sampled_from(DOORS), label="door")
    as_int = via_replace(path, method, n)
    as_float = door(path, method, float(n))
    stored = knob_value(as_float, path)
    assert stored == n and type(stored) is int
    assert as_float.to_dict() == as_int.to_dict() and as_float.hash() == as_int.hash()


@pytest.mark.parametrize(("path", "method", "meta"), INT_KNOBS, ids=IDS)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_float_with_a_fraction_is_refused_alike_on_every_door(path, method, meta, data):
    value = data.draw(st.floats(float(meta["low"]), float(meta["high"]))
                      .filter(lambda v: not v.is_integer()), label="value")
    messages = {door.__name__: refusal(door, path, method, value) for door in DOORS}
    assert len(set(messages.values())) == 1, messages
    assert messages["via_replace"].startswith(
        f"{path} = {value!r} is not allowed: expected a whole number >= {meta['low']}")
    assert meta["help"] in messages["via_replace"]


@pytest.mark.parametrize(("path", "method", "meta"), INT_KNOBS, ids=IDS)
@pytest.mark.parametrize("value", [True, False, float("inf"), float("nan"), "2"],
                         ids=["True", "False", "inf", "nan", "text"])
def test_no_bool_infinity_or_text_passes_for_a_whole_number(path, method, meta, value):
    messages = {refusal(door, path, method, value) for door in (via_replace, via_constructor,
                                                                via_attribute)}
    assert len(messages) == 1
    assert "is not allowed: expected a whole number" in messages.pop()


def test_a_huge_whole_float_is_refused_as_it_was_written():
    with pytest.raises(ConfigError) as e:
        BASE.replace(seed=1e300).validate()
    assert str(e.value).startswith("seed = 1e+300 is not allowed: expected a number >= 0")


@pytest.mark.parametrize(("path", "value"), [("seed", 1.0), ("method.r", 4.0),
                                             ("eval.samples", 1.0), ("steps", 1.0),
                                             ("data.max_length", 64.0), ("batch_size", 2.0),
                                             ("size", 20.0), ("eval_every", 1.0)])
def test_the_issues_floats_name_the_same_cached_run_as_their_ints(path, value):
    from ftlab.runs import cache_key

    cfg = BASE.replace(steps=1, size=10)
    assert (cache_key(cfg.replace(**{path: value}).resolved())
            == cache_key(cfg.replace(**{path: int(value)}).resolved()))


def test_int_knobs_of_valid_configs_stay_ints_in_their_hashed_form():
    """The cache key of a config that was valid before is built from the same JSON."""
    for method in METHODS:
        for rl in (None, True):
            d = BASE.replace(method=method, rl=rl).resolved().to_dict()
            for path, _, _ in INT_KNOBS:
                *section, name = path.split(".")
                holder = d[section[0]] if section else d
                if holder is not None and name in holder and holder[name] is not None:
                    assert type(holder[name]) is int, (method, path, holder[name])


def test_flags_of_whole_numbers_read_floats_through_the_same_door():
    def flags(*extra):
        return config_from_args(build_parser().parse_args(
            ["train", "--model", "tiny", "--preset", "cpu", *extra])).resolved()

    cfg = flags("--steps", "2.0", "--size", "20.0", "--seed", "3.0", "--eval-every", "1.0")
    assert (cfg.train.max_steps, cfg.data.size, cfg.seed, cfg.eval.every) == (2, 20, 3, 1)
    assert type(cfg.train.max_steps) is int
    assert cfg.hash() == flags("--steps", "2", "--size", "20", "--seed", "3",
                               "--eval-every", "1").hash()
    with pytest.raises(ConfigError) as flag:
        flags("--steps", "2.5")
    with pytest.raises(ConfigError) as setting:
        flags("--set", "steps=2.5")
    assert str(flag.value) == str(setting.value)
    assert str(flag.value).startswith("train.max_steps = 2.5 is not allowed: expected a whole")


def test_a_reward_model_config_keeps_whole_floats_as_ints():
    from ftlab.rlhf.reward_model import RewardModelConfig

    cfg = RewardModelConfig(lora_r=4.0, seed=2.0, preset="cpu").resolved()
    assert (cfg.lora_r, cfg.seed) == (4, 2) and type(cfg.lora_r) is int
    with pytest.raises(ConfigError, match=r"lora_r = 4\.5 is not allowed: expected a whole"):
        RewardModelConfig(lora_r=4.5, preset="cpu").resolved()


def test_a_run_given_whole_floats_trains_and_is_found_again_by_its_ints(runs_dir):
    """The issue's raw TypeErrors (seed, r, eval.samples, max_length, steps, batch_size) and
    the cache miss (eval_every) on one real run of the tiny model."""
    floats = BASE.replace(seed=1.0, r=4.0, steps=1.0, batch_size=2.0, size=10.0,
                          eval_every=1.0, **{"eval.samples": 1.0, "data.max_length": 64.0,
                                             "eval.sample_max_new_tokens": 4.0})
    first = ftlab.train(floats, progress=False)
    assert first.status == "completed" and first.final["steps"] == 1
    ints = BASE.replace(seed=1, r=4, steps=1, batch_size=2, size=10, eval_every=1,
                        **{"eval.samples": 1, "data.max_length": 64,
                           "eval.sample_max_new_tokens": 4})
    again = ftlab.train(ints, reuse=True, progress=False)
    assert again.from_cache and again.path == first.path


# -- texts a run cannot use ------------------------------------------------------------

@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_an_init_text_without_a_token_is_refused_at_the_door(method):
    with pytest.raises(ConfigError) as e:
        BASE.replace(method=method, init_text="", init="text").validate()
    assert str(e.value).startswith("method.init_text = '' is not allowed: expected a text of "
                                   "at least one character")
    assert BASE.replace(method=method, init_text=" ", init="text").validate()  # one token


def test_an_empty_init_text_through_the_cli_is_one_line_not_an_internal_error(capsys):
    code = ftlab.cli.main(["train", "--model", "tiny", "--method", "prompt", "--json",
                           "--set", "method.init_text="])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["type"] == "ConfigError"
    assert out["error"].startswith("method.init_text = '' is not allowed")


@pytest.mark.parametrize("path", ["model", "data.path"])
@pytest.mark.parametrize(("name", "phrase"), [
    ("x" * 5000, "a path of at most 4096 bytes (this one has 5000)"),
    ("runs/" + "y" * 300 + "/file.jsonl", "names have at most 255 bytes each (one here has 300)"),
    ("é" * 200, "names have at most 255 bytes each (one here has 400)"),
])
def test_a_name_longer_than_file_systems_allow_is_refused_at_the_door(path, name, phrase):
    with pytest.raises(ConfigError) as e:
        BASE.replace(**{path: name}).resolved()
    assert e.value.field == path and phrase in str(e.value)
    assert len(str(e.value)) < 400  # the value is shown by its start, not 5,000 characters


def test_a_long_model_name_through_the_cli_is_one_clear_line(capsys):
    code = ftlab.cli.main(["train", "--model", "m" * 5000, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["type"] == "ConfigError" and "Errno" not in out["error"]


def test_names_of_a_usual_length_still_pass():
    ok = BASE.replace(**{"data.path": "a/" + "b" * 255 + "/rows.jsonl"})
    ok.validate()  # the file is looked for where it is opened, not here
    assert BASE.replace(model="HuggingFaceTB/SmolLM2-135M-Instruct").validate()


# -- an empty knob name --------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: BASE.replace(**{"": 5}),
    lambda: BASE.replace(**{"  ": 5}),
    lambda: RunConfig(**{"": 5}),
    lambda: DataConfig(**{"": 5}),
    lambda: RunConfig(train={"": 5}),
], ids=["replace", "replace-spaces", "RunConfig", "DataConfig", "section-dict"])
def test_an_empty_knob_name_is_named_as_empty(make):
    with pytest.raises(ConfigError) as e:
        make()
    text = str(e.value)
    assert "the name is empty" in text and "--set name=value" in text
    assert not text.startswith(" =")


@pytest.mark.parametrize("item", ["=5", " =5", "=", "   =x"])
def test_set_with_an_empty_name_shows_the_form(item):
    args = build_parser().parse_args(["train", "--model", "tiny", "--set", item])
    with pytest.raises(ConfigError) as e:
        config_from_args(args)
    assert str(e.value).startswith(f"--set = {item!r} is not allowed: expected KEY=VALUE "
                                   "with a knob's name before the '=', but the name is empty")
    assert "--set name=value" in str(e.value)
