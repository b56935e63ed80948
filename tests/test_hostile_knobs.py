"""Three doors, one check: RunConfig, the CLI's ``--set`` and the panel's ``set``.

Every knob value enters through one of these doors, and all three run the knob's own
declared check, so they accept exactly the same values and refuse the rest with a
``ConfigError`` naming the knob, never another exception, and never a silent clamp.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ftlab
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
