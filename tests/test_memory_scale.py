"""The memory-at-scale estimator: shapes, trainable counts, and the published anchors."""

from dataclasses import fields

import pytest

from ftlab.instruments.memory_scale import (
    SHAPES,
    Shape,
    estimate,
    fit_table,
    shape_for,
    trainable_params,
    which_fits,
)


def test_shapes_give_the_published_parameter_counts():
    expected = {"135m": 134.5e6, "1b": 1.24e9, "7b": 6.74e9, "13b": 13.0e9, "65b": 65.3e9}
    for key, n in expected.items():
        assert SHAPES[key].n_params == pytest.approx(n, rel=0.01), key


def test_trainable_counts_match_what_peft_trains_on_smollm2():
    # measured by ftlab.param_report on the embedded model (DESIGN.md)
    s = SHAPES["135m"]
    assert trainable_params(s, "lora") == 2_442_240
    assert trainable_params(s, "prefix") == 230_400
    assert trainable_params(s, "prompt") == 11_520


def test_the_published_anchors_hold():
    # QLoRA (Dettmers et al., 2023): LLaMA-65B fine-tuned on one 48 GB GPU (r=64)
    assert estimate("65b", "qlora", r=64).fits(48)
    assert not estimate("65b", "lora").fits(80)
    # full fine-tuning of a 7B model in 16-bit with AdamW needs well over 80 GB
    assert estimate("7b", "full").total_gb > 1.2 * 80


def test_orderings_at_every_size():
    for key in ("1b", "7b", "13b", "65b"):
        e = {m: estimate(key, m) for m in ("full", "lora", "qlora", "prefix", "prompt")}
        assert e["full"].total > e["lora"].total > e["qlora"].total
        assert e["full"].trainable > e["lora"].trainable > e["prefix"].trainable \
            > e["prompt"].trainable
        assert e["qlora"].weights < 0.5 * e["lora"].weights  # 1B: its 128k vocabulary stays 16-bit


def test_a_bare_size_gets_a_llama_shape_and_answers_which_fits():
    s = shape_for("3b")
    assert s.n_params == pytest.approx(3e9, rel=0.1)
    fits = which_fits("3b", 16)
    assert "qlora" in fits and "full" not in fits
    assert list(fits) == sorted(fits, key=lambda m: fits[m].total)
    with pytest.raises(ValueError, match="expected one of"):
        shape_for("huge")


def test_fit_table_has_a_row_per_model_and_method():
    rows = fit_table()
    assert len(rows) == 4 * 5
    row = next(r for r in rows if r["model"] == "LLaMA-65B" and r["method"] == "qlora")
    assert row["smallest GPU"] == "48 GB"


@pytest.mark.parametrize("knobs", [{}, {"r": 3, "num_virtual_tokens": 7},
                                   {"target_modules": "q,v"}])
def test_each_methods_formula_counts_what_it_trains_on_the_tiny_model(knobs):
    # the formula memory_scale uses is the method's own declaration (ftlab.methods)
    from transformers import AutoConfig

    from ftlab.config import RunConfig
    from ftlab.engine import build_model
    from ftlab.methods import METHODS, param_report
    from ftlab.models import resolve_source

    shape = Shape.from_config(AutoConfig.from_pretrained(resolve_source("tiny")))
    for name, cls in METHODS.items():
        own = {k: v for k, v in knobs.items() if k in {f.name for f in fields(cls)}}
        cfg = RunConfig(model="tiny", method=name, preset="cpu").replace(**own)
        model, _ = build_model(cfg.resolved())
        assert cfg.method.trainable_params(shape) == param_report(model).trainable, name
        assert cls.label  # how tables name it, declared with the method


def test_a_method_config_gives_the_same_estimate_as_its_name():
    from ftlab.methods import method_config

    assert estimate("7b", method_config("lora", r=16)) == estimate("7b", "lora", r=16)
    assert trainable_params(SHAPES["135m"], method_config("prompt", num_virtual_tokens=5)) \
        == 5 * 576
