"""Three doors, one check: RunConfig, the CLI's ``--set`` and the panel's ``set``.

Every knob value enters through one of these doors, and all three run the knob's own
declared check, so they accept exactly the same values and refuse the rest with a
``ConfigError`` naming the knob, never another exception, and never a silent clamp.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ftlab
import ftlab.labs
from ftlab.cli import build_parser, config_from_args
from ftlab.config import DataConfig, EvalConfig, TrainConfig
from ftlab.errors import ConfigError
from ftlab.knobs import knobs_of
from ftlab.widgets import ControlPanel

BASE = ftlab.RunConfig(model="tiny", preset="cpu")
SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "method": ftlab.Lora}
KNOBS: dict[str, dict] = {
    **{name: meta for name, meta in knobs_of(ftlab.RunConfig).items()},
    **{f"{section}.{name}": meta for section, cls in SECTIONS.items()
       for name, meta in knobs_of(cls).items()},
}


# -- the three doors: True if accepted, False if refused with a ConfigError --------------

def through_runconfig(path: str, value) -> bool:
    if "." in path:
        section, name = path.split(".")
        kwargs = ({"method": {"name": "lora", name: value}} if section == "method"
                  else {section: {name: value}})
    else:
        kwargs = {path: value}
    try:
        ftlab.RunConfig(**{"model": "tiny", "preset": "cpu", **kwargs}).resolved()
    except ConfigError as e:
        assert path in str(e) or path.split(".")[-1] in str(e)
        return False
    return True


def through_cli(path: str, value) -> bool:
    args = build_parser().parse_args(
        ["train", "--model", "tiny", "--preset", "cpu", "--set", f"{path}={json.dumps(value)}"])
    try:
        config_from_args(args).resolved()
    except ConfigError as e:
        assert path in str(e)
        return False
    return True


@pytest.fixture(scope="module")
def panel() -> ControlPanel:
    return ControlPanel(BASE, knobs=list(KNOBS), samples=False)


def through_panel(panel: ControlPanel, path: str, value) -> bool:
    knob = panel.knobs[path]
    before = knob.widget.value
    try:
        panel.set(**{path: value})
    except ConfigError as e:
        assert path in str(e)
        assert knob.widget.value == before  # refused before the widget was touched
        return False
    try:
        if value is not None:  # shown as given: a slider widens instead of clamping
            assert knob.get() == value or (value == "" and knob.get() is None)
        panel.build_config()
    except ConfigError as e:
        assert path in str(e)
        return False
    finally:
        knob.widget.value = before
    return True


# -- values: the knob's own edges and choices, and anything a learner might type --------

ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["cpu", "CPU", "cuda", "cuda:0", "cuda:x", "mps", "auto", "gpu", "chat",
                     "arithmetic", "lora", "1e-3", "8", "nosuch", "", " ", "a\x00b",
                     "all-linear", "float32", "cosine"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
)


def values_for(meta: dict):
    near = [st.just(meta["default"])]
    if meta.get("choices"):
        near.append(st.sampled_from(list(meta["choices"])))
    for edge in (meta.get("low"), meta.get("high")):
        if edge is not None:
            near += [st.just(edge), st.just(float(edge)), st.floats(edge - 1, edge + 1),
                     st.integers(math.floor(edge) - 2, math.ceil(edge) + 2)]
    return st.one_of(*near, ODD)


@st.composite
def knob_values(draw):
    path = draw(st.sampled_from(sorted(KNOBS)))
    return path, draw(values_for(KNOBS[path]))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(knob_values())
def test_every_knob_value_is_accepted_or_refused_alike_by_all_three_doors(panel, pv):
    path, value = pv
    verdicts = {"RunConfig": through_runconfig(path, value), "--set": through_cli(path, value),
                "panel.set": through_panel(panel, path, value)}
    assert len(set(verdicts.values())) == 1, f"{path} = {value!r}: {verdicts}"


def test_every_knob_is_covered():
    assert {"model", "device", "seed", "data.path", "data.task", "train.learning_rate",
            "eval.early_stopping_patience", "method.r", "save_weights"} <= set(KNOBS)


# -- the panel's setters, one message per kind of mistake ------------------------------

PANEL_CASES = [
    ({"lr": -1}, "train.learning_rate = -1 is not allowed: expected a number > 0.0 and <= 1.0"),
    ({"lr": 0}, "train.learning_rate = 0 is not allowed"),
    ({"lr": 3.0}, "train.learning_rate = 3.0 is not allowed"),
    ({"lr": float("nan")}, "train.learning_rate = nan is not allowed"),
    ({"lr": "1e-3"}, "train.learning_rate = '1e-3' is not allowed"),
    ({"steps": 0}, "train.max_steps = 0 is not allowed"),
    ({"steps": 2.5}, "train.max_steps = 2.5 is not allowed: expected a whole number"),
    ({"steps": True}, "train.max_steps = True is not allowed"),
    ({"r": None}, "method.r = None is not allowed"),
    ({"r": "8"}, "method.r = '8' is not allowed"),
    ({"size": 10**9}, "data.size = 1000000000 is not allowed"),
    ({"nosuch": 1}, "nosuch = 1 is not allowed: expected a knob of this panel: method, lr, "
     "steps, size, r, seed"),
    ({"method": "nosuch"}, "method = 'nosuch' is not allowed: expected one of this panel's "
     "methods: 'lora', 'full'"),
    ({"method": "prefix"}, "expected one of this panel's methods: 'lora', 'full'"),
    ({"method": None}, "method = None is not allowed"),
    ({"steps": 5, "lr": -1}, "train.learning_rate = -1"),  # all or nothing: steps stays
]


@pytest.mark.parametrize(("values", "phrase"), PANEL_CASES,
                         ids=[repr(v)[:40] for v, _ in PANEL_CASES])
def test_panel_set_refuses_with_the_config_message_and_changes_nothing(tmp_path, values, phrase):
    panel = ControlPanel(BASE, knobs=["lr", "steps", "size", "r", "seed"],
                         methods=["lora", "full"], runs_dir=tmp_path, samples=False)
    before = {name: k.widget.value for name, k in panel.knobs.items()}
    config_before = panel.build_config()
    with pytest.raises(ConfigError) as info:
        panel.set(**values)
    assert phrase in str(info.value)
    assert {name: k.widget.value for name, k in panel.knobs.items()} == before
    assert panel.method.value == "lora" and panel.build_config() == config_before


def test_panel_set_shows_values_beyond_the_slider_instead_of_clamping(tmp_path):
    panel = ControlPanel(BASE, knobs=["lr", "steps"], runs_dir=tmp_path, samples=False)
    panel.set(lr=5e-8, steps=1000)  # outside the sliders' view
    assert panel["lr"].value == 5e-8 and panel["steps"].value == 1000
    cfg = panel.build_config()
    assert cfg.train.learning_rate == 5e-8 and cfg.train.max_steps == 1000
    panel.set(learning_rate=2e-3)  # any name of a knob the panel shows
    assert panel.build_config().train.learning_rate == 2e-3


@pytest.mark.parametrize(("kwargs", "phrase"), [
    ({"data": {"nosuch": 1}}, "data.nosuch = 1 is not allowed: expected a knob of data"),
    ({"train": {"lr": 1e-3}}, "train.lr = 0.001 is not allowed: expected a knob of train"),
    ({"eval": 5}, "eval = 5 is not allowed: expected a EvalConfig or a dict of its knobs"),
    ({"method": {"name": "lora", "rank": 4}}, "method.rank = 4 is not allowed"),
    ({"method": {"name": "nosuch"}}, "method.name = 'nosuch' is not allowed"),
    ({"method": "nosuch"}, "method = 'nosuch' is not allowed"),
    ({"device": "CPU"}, "Did you mean 'cpu'?"),
    ({"save_weights": 1}, "save_weights = 1 is not allowed: expected one of True, False"),
    ({"model": None}, "model = None is not allowed: expected a text (str)"),
])
def test_runconfig_refuses_bad_sections_with_a_config_error(kwargs, phrase):
    with pytest.raises(ConfigError) as info:
        ftlab.RunConfig(**kwargs).validate()
    assert phrase in str(info.value)


# -- unknown names: one door (ftlab.knobs.unknown_knob), never Python's TypeError --------

class _OneArmLab(ftlab.labs.Lab):
    base = BASE
    arms = {"a": {}}


UNKNOWN_NAMES = [
    (lambda: ftlab.RunConfig(nosuch=1),
     "nosuch = 1 is not allowed: expected a knob of RunConfig: model, method, data, train"),
    (lambda: ftlab.RunConfig(sed=1), "Did you mean 'seed'?"),
    (lambda: ftlab.RunConfig(lerning_rate=1e-3), "Did you mean 'learning_rate'?"),
    (lambda: ftlab.RunConfig(lr=1e-3), "'lr' is a knob of the train section: give it as "
     "RunConfig(train={'learning_rate': 0.001}), or change a config with "
     "config.replace(lr=0.001)"),
    (lambda: ftlab.RunConfig(r=8), "RunConfig(method={'name': 'lora', 'r': 8})"),
    (lambda: ftlab.RunConfig(num_virtual_tokens=4),
     "RunConfig(method={'name': 'prefix', 'num_virtual_tokens': 4})"),
    (lambda: dataclasses.replace(BASE, nosuch=1), "nosuch = 1 is not allowed"),
    (lambda: dataclasses.replace(DataConfig(), sise=10),
     "data.sise = 10 is not allowed: expected a knob of data: task, path, size"),
    (lambda: dataclasses.replace(DataConfig(), sise=10), "Did you mean 'size'?"),
    (lambda: DataConfig(*range(20)), "Give them by name instead"),
    (lambda: TrainConfig(lr=1), "train.lr = 1 is not allowed: expected a knob of train"),
    (lambda: ftlab.Lora(rank=4), "method.rank = 4 is not allowed: expected a knob of lora: "
     "r, alpha, dropout, target_modules, rslora."),
    (lambda: ftlab.Lora(num_virtual_tokens=4), "method.num_virtual_tokens = 4 is not allowed: "
     "expected a knob of lora: r, alpha, dropout, target_modules, rslora. It is a knob of prefix, "
     "prompt: choose that method, or remove it."),
    (lambda: ftlab.Lora(num_virtual_token=4), "Did you mean 'num_virtual_tokens'?"),
    (lambda: ftlab.method_config("lora", default_lr=1),  # a ClassVar is not a knob
     "method.default_lr = 1 is not allowed: expected a knob of lora: r, alpha, dropout, "
     "target_modules, rslora."),
    (lambda: ftlab.method_config(["lora"]), "method = ['lora'] is not allowed"),
    (lambda: BASE.replace(lerning_rate=1e-3), "Did you mean 'learning_rate' or "
     "'train.learning_rate'?"),
    (lambda: ftlab.RunConfig.from_dict({"nosuch": 1}), "nosuch = 1 is not allowed"),
    (lambda: ftlab.RunConfig.from_dict({1: 2}), "1 = 2 is not allowed"),
    (lambda: ftlab.RunConfig.from_dict([]), "config = [] is not allowed: expected a dict"),
    (lambda: ftlab.RunConfig.from_dict({"method": {"name": "lora", "rank": 4}}),
     "method.rank = 4 is not allowed"),
    (lambda: ftlab.RunConfig(data={1: 2}), "data.1 = 2 is not allowed"),
    (lambda: _OneArmLab(lerning_rate=1e-3), "Did you mean 'learning_rate'"),
    (lambda: _OneArmLab().config("a", nosuch=1), "nosuch = 1 is not allowed"),
    (lambda: config_from_args(build_parser().parse_args(
        ["train", "--set", "lerning_rate=0.001"])), "Did you mean 'learning_rate'"),
]


@pytest.mark.parametrize(("make", "phrase"), UNKNOWN_NAMES,
                         ids=[p[:40] for _, p in UNKNOWN_NAMES])
def test_an_unknown_name_is_a_config_error_with_close_matches(make, phrase):
    with pytest.raises(ConfigError) as info:
        make()
    assert phrase in str(info.value)


def test_runconfig_stays_a_plain_dataclass():
    cfg = BASE.replace(r=16, lr=2e-3, size=40)
    assert dataclasses.is_dataclass(cfg)
    assert [f.name for f in dataclasses.fields(cfg)][:3] == ["model", "method", "data"]
    assert dataclasses.replace(cfg, seed=3).seed == 3
    assert dataclasses.replace(cfg.method, r=4) == ftlab.Lora(r=4)
    assert copy.deepcopy(cfg) == cfg and pickle.loads(pickle.dumps(cfg)) == cfg
    assert ftlab.RunConfig.from_dict(cfg.to_dict()) == cfg
    assert ftlab.RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).hash() == cfg.hash()
    assert "knob_prefix" not in cfg.to_dict() and "knob_prefix" not in cfg.to_dict()["data"]
    assert ftlab.RunConfig.from_dict({"method": "prefix"}).method == ftlab.PrefixTuning()
    assert BASE.replace(method={"name": "lora", "r": 4}).method == ftlab.Lora(r=4)


# -- the panel's widgets: a value set on one is checked, never clamped -------------------

def make_knob_panel(tmp_path) -> ControlPanel:
    return ControlPanel(BASE, knobs=["lr", "steps", "size", "r", "seed", "patience",
                                     "data.path", "device", "save_weights", "format"],
                        methods=["lora", "full"], runs_dir=tmp_path, samples=False)


WIDGET_CASES = [
    ("lr", -1, "train.learning_rate = -1 is not allowed: expected a number > 0.0 and <= 1.0",
     "Not applied: train.learning_rate stays 0.001."),
    ("lr", 3.0, "train.learning_rate = 3.0 is not allowed",
     "Not applied: train.learning_rate stays 0.001."),
    ("lr", "1e-3", "train.learning_rate = '1e-3' is not allowed", "stays 0.001"),
    ("lr", float("nan"), "train.learning_rate = nan is not allowed", "stays 0.001"),
    ("steps", 0, "train.max_steps = 0 is not allowed: expected a number >= 1 and <= 100000",
     "Not applied: train.max_steps stays 24."),
    ("steps", 10**6, "train.max_steps = 1000000 is not allowed", "stays 24"),
    ("steps", 2.5, "train.max_steps = 2.5 is not allowed: expected a whole number", "stays 24"),
    ("size", 3, "data.size = 3 is not allowed: expected a number >= 10", "stays 72"),
    ("r", None, "method.r = None is not allowed", "Not applied: method.r stays 8."),
    ("r", 1000, "method.r = 1000 is not allowed", "stays 8"),
    ("seed", -1, "seed = -1 is not allowed", "Not applied: seed stays 0."),
    ("seed", "x", "seed = 'x' is not allowed", "stays 0"),
    ("patience", -2, "eval.early_stopping_patience = -2 is not allowed", "stays None"),
    ("data.path", 5, "data.path = 5 is not allowed: expected a text (str)", "stays None"),
    ("device", "CPU", "Did you mean 'cpu'?", "Not applied: device stays 'auto'."),
    ("save_weights", 1, "save_weights = 1 is not allowed: expected one of True, False",
     "stays False"),
    ("format", "nosuch", "data.format = 'nosuch' is not allowed", "stays 'chat'"),
    ("method", "nosuch", "method = 'nosuch' is not allowed: expected one of this panel's "
     "methods: 'lora', 'full'", "Not applied: method stays 'lora'."),
    ("method", None, "method = None is not allowed", "stays 'lora'"),
]


@pytest.mark.parametrize(("name", "value", "phrase", "kept"), WIDGET_CASES,
                         ids=[f"{n}={v!r}" for n, v, _, _ in WIDGET_CASES])
def test_a_refused_widget_value_is_reported_in_the_panel_and_not_applied(tmp_path, name, value,
                                                                         phrase, kept):
    panel = make_knob_panel(tmp_path)
    before = {n: k.widget.value for n, k in panel.knobs.items()}
    config_before = panel.build_config()
    with pytest.raises(ConfigError) as info:  # one line in a notebook, not a traceback
        panel[name].value = value
    assert phrase in str(info.value) and kept in str(info.value)
    assert phrase in panel.message_text and kept in panel.message_text  # the panel says so
    assert panel.message.layout.display is None
    assert {n: k.widget.value for n, k in panel.knobs.items()} == before  # nothing clamped
    assert panel.method.value == "lora" and panel.build_config() == config_before
    # a value the knob allows is taken, and the refusal no longer shows
    panel[name].value = panel[name].value
    assert panel.message_text == ""


def test_a_widget_value_beyond_the_slider_widens_it_instead_of_clamping(tmp_path):
    panel = make_knob_panel(tmp_path)
    panel["steps"].value = 1000  # the slider ends at 200; the knob allows 100 000
    panel["lr"].value = 5e-8  # below the log slider's 1e-6
    panel["r"].value = 200.0  # a whole number given as a float
    assert (panel["steps"].value, panel["lr"].value, panel["r"].value) == (1000, 5e-8, 200)
    assert panel["steps"].max >= 1000 and panel["lr"].min <= -8
    cfg = panel.build_config()
    assert (cfg.train.max_steps, cfg.train.learning_rate, cfg.method.r) == (1000, 5e-8, 200)
    panel["patience"].value = 0  # the slider's own 'off'
    assert panel.build_config().eval.early_stopping_patience is None
    assert panel.message_text == ""


def test_the_browser_side_is_left_to_the_run_check(tmp_path):
    panel = make_knob_panel(tmp_path)
    panel["seed"].set_state({"value": -1})  # typed into the field: held as typed
    assert panel["seed"].value == -1 and panel.message_text == ""
    with pytest.raises(ConfigError, match="seed = -1 is not allowed"):
        panel.build_config()


def test_an_unknown_panel_widget_is_a_config_error(tmp_path):
    panel = make_knob_panel(tmp_path)
    with pytest.raises(ConfigError, match="expected a knob of this panel: method, lr, steps"):
        panel["nosuch"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(knob_values())
def test_a_widget_accepts_exactly_what_panel_set_accepts(panel, pv):
    path, value = pv
    knob = panel.knobs[path]
    if knob.off_value != "unset" and value == knob.off_value and type(value) is not bool \
            and isinstance(value, str) == isinstance(knob.off_value, str):
        return  # the widget's own 'off' (0, '') stands for None; set() takes None for it
    before = knob.widget.value
    try:
        knob.check(value)
        allowed = True
    except ConfigError:
        allowed = False
    try:
        knob.widget.value = value
    except ConfigError as e:
        assert not allowed and path in str(e) and "Not applied" in str(e)
        assert knob.widget.value == before
        return
    finally:
        knob.widget.value = before
    assert allowed, f"{path} = {value!r} was taken by the widget but refused by the knob"
