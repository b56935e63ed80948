"""Saving an adapter or a merged model never replaces what is there without being told.

Every save goes through one door (``ftlab.instruments.adapters``): a folder that already
holds files is refused unless ``overwrite=True``, and so are a file, an empty path, no
model, and a place that cannot be written, each in one line that names the folder and
what to do. What was there before a refusal is left byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftlab.config import RunConfig
from ftlab.engine import build_model
from ftlab.errors import ConfigError, EnvPathError
from ftlab.instruments import adapters
from ftlab.models import load_model


@pytest.fixture(scope="module")
def lora():
    """A tiny LoRA model whose B matrices are random (as if trained)."""
    model, tok = build_model(RunConfig(model="tiny", method="lora", preset="cpu").replace(
        r=4, dropout=0.0).resolved())
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, tok


def _save_adapter(model, tok, folder, **kw):
    return adapters.save_adapter(model, folder, **kw)


def _save_merged(model, tok, folder, **kw):
    return adapters.save_merged(model, folder, tok, **kw)


SAVES = {"save_adapter": _save_adapter, "save_merged": _save_merged}


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


_names = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="._-"),
                 min_size=1, max_size=20).filter(lambda n: n not in (".", ".."))
_contents = st.dictionaries(_names, st.binary(max_size=64), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contents=_contents, save=st.sampled_from(sorted(SAVES)),
       nested=st.booleans())
def test_every_save_refuses_a_folder_that_holds_anything(lora, tmp_path_factory, contents,
                                                        save, nested):
    """Property: whatever a folder holds (a file of any name, or only a subfolder), both
    saves refuse it and leave it as it was."""
    folder = tmp_path_factory.mktemp("target")
    for name, data in contents.items():
        (folder / "sub" / name if nested else folder / name).parent.mkdir(exist_ok=True)
        (folder / "sub" / name if nested else folder / name).write_bytes(data)
    before = _digest(folder)
    with pytest.raises(EnvPathError) as err:
        SAVES[save](*lora, folder)
    msg = str(err.value)
    assert msg.startswith(f"folder ({save}) = '{folder}' already holds ")
    assert "overwrite=True" in msg and "\n" not in msg
    assert _digest(folder) == before


@pytest.mark.parametrize("save", sorted(SAVES))
def test_an_earlier_save_is_replaced_only_with_overwrite(lora, tmp_path, save):
    model, tok = lora
    first = SAVES[save](model, tok, tmp_path / "out")
    weights = next(f for f in first.files if f.endswith(".safetensors"))
    with torch.no_grad():  # the model changes, as after more training
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(1.0)
    try:
        old = (tmp_path / "out" / weights).read_bytes()
        with pytest.raises(EnvPathError, match="already holds"):
            SAVES[save](model, tok, tmp_path / "out")
        assert (tmp_path / "out" / weights).read_bytes() == old
        again = SAVES[save](model, tok, tmp_path / "out", overwrite=True)
        assert set(again.files) == set(first.files)
        assert (tmp_path / "out" / weights).read_bytes() != old
    finally:
        with torch.no_grad():
            next(p for n, p in model.named_parameters() if "lora_B" in n).sub_(1.0)


@pytest.mark.parametrize("save", sorted(SAVES))
def test_an_empty_folder_is_a_fine_target(lora, tmp_path, save):
    (tmp_path / "empty").mkdir()
    saved = SAVES[save](*lora, tmp_path / "empty")
    assert saved.weights_bytes > 0


# (case, the target (given tmp_path and a file in it), error, phrases)
TARGETS = [
    ("a file", lambda t, f: f, EnvPathError, ["is a file, not a folder", "left as it is"]),
    ("inside a file", lambda t, f: f / "adapter", EnvPathError,
     ["cannot be written (Not a directory)"]),
    ("empty path", lambda t, f: "", ConfigError, ["folder = ''", "not empty"]),
    ("blank path", lambda t, f: "   ", ConfigError, ["folder = '   '", "not empty"]),
    ("not a path", lambda t, f: 3, ConfigError, ["folder = 3", "a folder path"]),
    ("a 5000-character name", lambda t, f: t / ("x" * 5000), EnvPathError,
     ["characters)' cannot be used (File name too long)"]),
]


@pytest.mark.parametrize("save", sorted(SAVES))
@pytest.mark.parametrize(("case", "target", "error", "phrases"), TARGETS,
                         ids=[c[0] for c in TARGETS])
def test_a_target_that_cannot_take_a_save_is_refused_in_one_line(
        lora, tmp_path, monkeypatch, save, case, target, error, phrases):
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("a learner's notes")
    with pytest.raises(error) as err:
        SAVES[save](*lora, target(tmp_path, notes))
    msg = str(err.value)
    assert all(p in msg for p in phrases), msg
    assert "\n" not in msg and len(msg) < 400
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]  # nothing written, not even "."
    assert notes.read_text() == "a learner's notes"


@pytest.mark.parametrize("save", sorted(SAVES))
def test_a_read_only_place_is_said_as_such(lora, readonly_dir, save):
    with pytest.raises(EnvPathError, match=r"cannot be written \((Read-only file system|"
                                           r"Permission denied)\)"):
        SAVES[save](*lora, readonly_dir / "adapter")


@pytest.mark.parametrize("save", sorted(SAVES))
def test_no_model_is_refused_with_where_to_get_one(tmp_path, save):
    with pytest.raises(ConfigError, match=r"^model = None is not allowed: expected a trained "
                                          r"model\. .*model_of\(run, lab\)"):
        SAVES[save](None, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_save_adapter_wants_an_adapter_and_save_merged_wants_lora(tmp_path):
    base, tok = load_model("tiny")
    with pytest.raises(ConfigError, match="expected a PEFT model.*save_merged"):
        adapters.save_adapter(base, tmp_path / "a")
    prompt, _ = build_model(RunConfig(model="tiny", method="prompt", preset="cpu").resolved())
    with pytest.raises(ConfigError, match="Only LoRA folds into the base weights"):
        adapters.save_merged(prompt, tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == []


def test_a_merged_save_loads_without_peft_and_answers_as_the_merged_model(lora, tmp_path):
    model, tok = lora
    saved = adapters.save_merged(model, tmp_path / "merged", tok)
    assert "model.safetensors" in saved.files and "adapter_config.json" not in saved.files
    again, tok2 = load_model(str(tmp_path / "merged"))
    merged = adapters.merged_copy(model).eval()
    ids = tok2("What is 2 + 3?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(again.eval()(ids).logits, merged(ids).logits, atol=1e-4)
    assert not hasattr(again, "peft_config")

