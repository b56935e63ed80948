"""Evaluators on real (tiny or embedded) models: shapes, determinism, sizes, errors."""

import math
from collections import Counter

import pytest
import torch

from ftlab import load_model
from ftlab.data.benchmark import AREAS, load_benchmark
from ftlab.data.formats import encode
from ftlab.data.probes import PROBE_TYPES, SAMPLE_PROMPTS
from ftlab.data.tasks import make_task
from ftlab.errors import ConfigError
from ftlab.evaluate import run_benchmark, run_suite, sample_answers, validation_loss
from ftlab.evaluate.suite import benchmark_subset, probe_subset


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("tiny")


def test_benchmark_is_broad_and_well_formed():
    items = load_benchmark()
    assert len(items) >= 300 and set(Counter(i.area for i in items)) == set(AREAS)
    assert min(Counter(i.area for i in items).values()) >= 60
    assert len({i.question for i in items}) == len(items)
    for it in items:
        assert 0 <= it.answer < len(it.choices) and len(set(it.choices)) == len(it.choices)
    assert load_benchmark() == items  # fixed on every machine


def test_cpu_subsets_are_stratified():
    sub = benchmark_subset(10)
    assert Counter(i.area for i in sub) == {a: 10 for a in AREAS}
    probes = probe_subset(2)
    assert Counter(p.type for p in probes) == {t: 2 for t in PROBE_TYPES}
    assert len({p.id.split("/")[1] for p in probes}) == 10  # every topic is used
    assert len({p.id.split("/")[1] for p in probe_subset(1)}) == 10


def test_validation_loss_matches_the_models_own_loss(tiny):
    model, tok = tiny
    row = make_task("arithmetic", 10).validation[0]
    enc = encode(row, tok, "chat")
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([enc["input_ids"]]),
                    labels=torch.tensor([enc["labels"]])).loss.item()
    got = validation_loss(model, tok, [row], progress=False)
    assert got.extra["loss"] == pytest.approx(ref, rel=1e-4)
    assert got.extra["perplexity"] == pytest.approx(math.exp(ref), rel=1e-4)
    assert 0 < got.score < 1


def test_padding_does_not_change_the_loss(tiny):
    model, tok = tiny
    rows = make_task("extraction", 20).validation
    one_by_one = [validation_loss(model, tok, [r], progress=False) for r in rows]
    batched = validation_loss(model, tok, rows, batch_size=4, progress=False)
    total = sum(r.extra["loss"] * r.extra["tokens"] for r in one_by_one)
    assert batched.extra["loss"] == pytest.approx(total / batched.extra["tokens"], rel=1e-4)


@pytest.mark.parametrize("suite", ["probes", "format", "task", "loss"])
def test_every_suite_returns_a_deterministic_result(tiny, suite):
    model, tok = tiny
    a = run_suite(suite, model, tok, task="extraction", progress=False).to_dict()
    b = run_suite(suite, model, tok, task="extraction", progress=False).to_dict()
    assert a == b
    assert {"suite", "score", "n", "breakdown"} <= set(a) and 0 <= a["score"] <= 1
    assert a["n"] > 0


def test_benchmark_is_deterministic_with_chance_and_interval(tiny):
    model, tok = tiny
    d = run_suite("benchmark", model, tok, progress=False).to_dict()
    assert d["chance"] == pytest.approx(0.25) and set(d["breakdown"]) == set(AREAS)
    assert d["ci95"][0] <= d["score"] <= d["ci95"][1]
    items = benchmark_subset(2)
    assert run_benchmark(model, tok, items, progress=False).to_dict() == \
        run_benchmark(model, tok, items, batch_size=3, progress=False).to_dict()


@pytest.mark.parametrize("kwargs", [{"suite": "vibes"}, {"suite": "task", "preset": "tpu"},
                                    {"suite": "task", "task": "poetry"}])
def test_bad_suite_arguments_raise_config_error(tiny, kwargs):
    model, tok = tiny
    suite = kwargs.pop("suite")
    with pytest.raises(ConfigError):
        run_suite(suite, model, tok, **kwargs)


@pytest.mark.slow
def test_base_model_knows_more_than_chance():
    model, tok = load_model()
    r = run_suite("benchmark", model, tok, progress=False)
    assert r.ci95[0] > r.chance  # the lower end of the 95% interval clears chance
    samples = sample_answers(model, tok, SAMPLE_PROMPTS[:1], max_new_tokens=16)
    assert "Paris" in samples[0]["output"] and samples[0]["stopped"]
