"""Broken environment paths and devices: one message naming the variable, before any work.

FTLAB_RUNS or FTLAB_CACHE pointing at a file, a folder that cannot be written, a device
that is misspelt or absent: each is refused with one line naming the variable (or knob),
the path and what to do, before a model loads and before a run folder is started; the
file a variable wrongly points at is left as it was.
"""

from __future__ import annotations

import json

import pytest
import torch

import ftlab
from ftlab.cli import main
from ftlab.engine import train
from ftlab.errors import ConfigError, EnvPathError
from ftlab.models import choose_placement
from ftlab.runs import list_runs

TRAIN = ["train", "--model", "tiny", "--json", "--steps", "1", "--size", "20",
         "--samples", "0"]


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("a learner's precious notes")
    return f


# (variable, what it points at, command, phrase of the message)
CASES = [
    ("FTLAB_RUNS", "file", ["runs"], "is a file, not a folder"),
    ("FTLAB_RUNS", "file", ["runs", "--json"], "is a file, not a folder"),
    ("FTLAB_RUNS", "file", TRAIN, "is a file, not a folder"),
    ("FTLAB_RUNS", "inside a file", TRAIN, "cannot be written (Not a directory)"),
    ("FTLAB_RUNS", "read-only", TRAIN, "cannot be written"),
    ("FTLAB_CACHE", "file", TRAIN, "is a file, not a folder"),
    ("FTLAB_CACHE", "file", ["prepare", "--json"], "is a file, not a folder"),
    ("FTLAB_CACHE", "inside a file", TRAIN, "cannot be written (Not a directory)"),
    ("FTLAB_CACHE", "read-only", TRAIN, "cannot be written"),
]


@pytest.mark.parametrize(("variable", "target", "command", "phrase"), CASES)
def test_a_bad_path_is_one_message_naming_the_variable(
        tmp_path, monkeypatch, capsys, a_file, request, variable, target, command, phrase):
    value = {"file": a_file, "inside a file": a_file / "sub",
             "read-only": request.getfixturevalue("readonly_dir") if target == "read-only"
             else None}[target]
    runs = tmp_path / "runs"
    monkeypatch.setenv("FTLAB_RUNS", str(runs))
    monkeypatch.setenv(variable, str(value))

    rc = main(command)
    out, err = capsys.readouterr()

    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    message = json.loads(out)["error"] if "--json" in command else err
    assert f"{variable} = '{value}' {phrase}" in message
    assert a_file.read_text() == "a learner's precious notes"  # nothing overwritten
    if variable == "FTLAB_CACHE":
        assert not runs.exists() or not any(runs.iterdir())  # refused before a run began


def test_the_runs_dir_argument_is_named_as_such(tmp_path, capsys, a_file):
    assert main([*TRAIN, "--runs-dir", str(a_file)]) == 2
    assert f"runs_dir (--runs-dir) = '{a_file}' is a file" in json.loads(
        capsys.readouterr().out)["error"]


def test_the_python_api_raises_the_same_error(monkeypatch, a_file):
    monkeypatch.setenv("FTLAB_RUNS", str(a_file))
    with pytest.raises(EnvPathError, match="FTLAB_RUNS = .* is a file, not a folder"):
        list_runs()  # not "no runs yet"
    monkeypatch.setenv("FTLAB_CACHE", str(a_file))
    with pytest.raises(EnvPathError, match="FTLAB_CACHE = .* is a file, not a folder"):
        ftlab.models.load_model("tiny")


def test_a_read_only_cache_that_holds_the_model_still_works(monkeypatch):
    """Read-only is only a problem when something must be written: a prepared cache loads."""
    cache = ftlab.models.cache_dir()
    assert (cache / "tiny-llama" / "config.json").exists()
    monkeypatch.setattr(ftlab.models, "writable_cache_dir",
                        lambda: pytest.fail("a prepared cache must not be written"))
    assert ftlab.models.tiny_model_dir() == cache / "tiny-llama"


# -- device: declared values, checked for presence before the model loads --------------

ABSENT = [d for d, present in [
    ("cuda", torch.cuda.is_available()),
    (f"cuda:{torch.cuda.device_count() + 3}", False),
    ("mps", getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
] if not present]


@pytest.mark.parametrize(("device", "phrase"), [
    ("CPU", "expected one of 'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU number), 'mps'"),
    ("CPU", "Did you mean 'cpu'?"),
    ("nosuch", "device = 'nosuch' is not allowed"),
    ("cuda:x", "device = 'cuda:x' is not allowed"),
    ("", "device = '' is not allowed"),
    ("gpu", "device = 'gpu' is not allowed"),
    *[(d, f"device = '{d}' is not allowed: expected 'auto' or 'cpu'") for d in ABSENT
      if not d.startswith("cuda:")],
    *[(d, f"device = '{d}' is not allowed") for d in ABSENT if d.startswith("cuda:")],
])
def test_a_bad_device_is_refused_before_the_model_loads(tmp_path, capsys, device, phrase):
    runs = tmp_path / "runs"
    rc = main([*TRAIN, "--device", device, "--runs-dir", str(runs)])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    assert phrase in json.loads(out)["error"] and json.loads(out)["type"] == "ConfigError"
    assert not runs.exists() or not any(runs.iterdir())  # no folder: nothing half-written


@pytest.mark.parametrize("device", ABSENT)
def test_the_python_api_checks_presence_before_loading(tmp_path, device):
    seen = []
    cfg = ftlab.RunConfig(model="tiny", preset="cpu", device=device)
    with pytest.raises(ConfigError, match=f"device = '{device}'"):
        train(cfg, on_event=seen.append, runs_dir=tmp_path, progress=False)
    assert seen == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError):
        choose_placement(device)


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_present_devices_pass(device):
    assert ftlab.RunConfig(device=device).validate().device == device
    assert choose_placement(device).device in ("cpu", "cuda", "mps")
