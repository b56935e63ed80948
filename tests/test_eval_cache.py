"""The base model is measured once: step-0 scores of an unchanged model come from disk."""

import pytest

import ftlab
from ftlab.engine import train
from ftlab.evaluate import cache, evaluator


@pytest.fixture
def evals(tmp_path, monkeypatch):
    """An empty score store (the converted models stay where they are: no conversion)."""
    monkeypatch.setattr(cache, "evals_dir", lambda: tmp_path / "evals")
    return tmp_path / "evals"


def tiny(**changes):
    base = {"size": 20, "steps": 1, "batch_size": 4, "eval.samples": 0}
    return ftlab.RunConfig(model="tiny", preset="cpu").replace(**{**base, **changes})


def test_step_zero_scores_of_the_base_are_cached_across_runs(runs_dir, evals):
    watch = {"task": evaluator("task", rows=4)}
    first = train(tiny(), evaluators=watch, progress=False)
    second = train(tiny(lr=3e-3), evaluators=watch, progress=False)  # another run, same base
    assert len(list(evals.iterdir())) == 1
    assert second.metric("task.score", at="first") == first.metric("task.score", at="first")
    # a prompt-tuning model is not the base at step 0: measured, not taken from the cache
    train(tiny(method="prompt"), evaluators=watch, progress=False)
    assert len(list(evals.iterdir())) == 1


def test_a_different_item_set_is_a_different_entry(runs_dir, evals):
    train(tiny(), evaluators={"task": evaluator("task", rows=4)}, progress=False)
    train(tiny(), evaluators={"task": evaluator("task", rows=2)}, progress=False)
    train(tiny(seed=1), evaluators={"task": evaluator("task", rows=2)}, progress=False)
    assert len(list(evals.iterdir())) == 3
