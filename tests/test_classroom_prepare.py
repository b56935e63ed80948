"""The class's one preparation step fills the shared cache with the base model's scores.

Tiny model, one lab, one seed: seconds. What ``classroom/prepare.sh`` runs for a class
(``python -m ftlab.classroom prepare``) is the same function with the real model, every lab
of the failure-mode notebooks and seeds 0, 1 and 2.
"""

from __future__ import annotations

import json
import stat

import pytest

from ftlab import classroom
from ftlab.evaluate import cache as eval_cache
from ftlab.labs.overfitting import Overfitting
from ftlab.models import cache_dir, tiny_model_dir


@pytest.fixture
def prepared(tmp_path):
    tiny_model_dir()  # in this install's cache, copied from there (no conversion)
    root = classroom.ClassRoot(tmp_path / "class")
    classroom.prepare_cache(root, models=("tiny",), from_cache=cache_dir(), labs=[Overfitting],
                            seeds=(0,), model="tiny")
    return root


def test_prepare_fills_the_shared_cache_with_the_base_models_scores(prepared, monkeypatch):
    root = prepared
    stored = sorted((root.cache / "evals").glob("*.json"))
    assert stored, "no base-model score in the shared cache"
    keys = [json.loads(p.read_text())["key"] for p in stored]
    assert {k["model"] for k in keys} == {"tiny"}  # the model asked for, not the default
    assert all(json.loads(p.read_text())["result"]["n"] > 0 for p in stored)
    for path in [root.cache, *root.cache.rglob("*")]:  # sealed: nobody else may write
        assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0, path

    # A student's step 0 now reads these scores: scoring again computes and writes nothing.
    writes = []
    monkeypatch.setattr(eval_cache, "write_json", lambda *a, **k: writes.append(a[0]))
    monkeypatch.setenv("FTLAB_CACHE", str(root.cache))
    assert classroom.score_base_models([Overfitting], seeds=(0,), model="tiny") > 0
    assert writes == []
    assert sorted((root.cache / "evals").glob("*.json")) == stored
