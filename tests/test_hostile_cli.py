"""The command line: every problem is one line (a JSON object with --json) and an exit code.

A traceback only with --debug or FTLAB_DEBUG=1. Hub ids that cannot be fetched fail in
seconds with a message, not after a minute of silent retries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ftlab import cli
from ftlab.cli import main
from ftlab.errors import ConfigError, ModelNotFoundError


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# (argv, exit code, phrase of the one line)
CASES = [
    (["train", "--steps", "abc"], 2, "argument --steps: invalid int value: 'abc'"),
    (["train", "--nosuch"], 2, "unrecognized arguments: --nosuch"),
    (["nosuch"], 2, "invalid choice: 'nosuch'"),
    (["train", "--preset", "huge"], 2, "argument --preset: invalid choice"),
    (["train", "--set", "rank"], 2, "--set = 'rank' is not allowed: expected KEY=VALUE"),
    (["train", "--set", "nosuch=1"], 2, "nosuch = 1 is not allowed: expected a knob of this run"),
    (["train", "--set", "lr=-1"], 2, "train.learning_rate = -1 is not allowed"),
    (["train", "--set", "data.size=[1]"], 2, "data.size = [1] is not allowed"),
    (["train", "--set", "device=CPU"], 2, "Did you mean 'cpu'?"),
    (["train", "--method", "nosuch"], 2, "method = 'nosuch' is not allowed"),
    (["train", "--model", "a b"], 2, "is not a folder on this machine, nor a model hub id"),
    (["train", "--model", "/etc/hostname"], 2, "is a file, not a model folder"),
    (["train", "--data", "/nonexistent.jsonl"], 2, "no such file"),
    (["train", "--data", "/"], 2, "is a folder, not a file"),
    (["eval", "--suite", "nosuch"], 2, "argument --suite: invalid choice"),
    (["eval", "--suite", "format", "--run", "/nonexistent"], 2, "is not a run folder"),
    (["eval", "--suite", "format", "--task", "nosuch"], 2, "--task = 'nosuch'"),
    (["params", "--method", "nosuch"], 2, "method = 'nosuch' is not allowed"),
]


@pytest.mark.parametrize(("argv", "code", "phrase"), CASES, ids=[" ".join(c[0]) for c in CASES])
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_every_error_is_one_line_and_a_json_object_with_json(
        tmp_path, capsys, argv, code, phrase, as_json):
    argv = [*argv, "--runs-dir", str(tmp_path)] if argv[0] == "train" else argv
    rc = main([*argv, *(["--json"] if as_json else [])])
    out, err = capsys.readouterr()
    assert rc == code
    assert phrase in one_line(err) and err.startswith("ftlab: error: ")
    if as_json:
        printed = json.loads(out)
        assert phrase in printed["error"] and printed["type"]
    else:
        assert out == ""
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_an_unexpected_error_is_one_line_with_exit_1_and_a_traceback_only_on_request(
        monkeypatch, capsys):
    def broken(args):
        raise TypeError("a bug somewhere deep")

    monkeypatch.setattr(cli, "cmd_runs", broken)
    monkeypatch.delenv("FTLAB_DEBUG", raising=False)
    assert main(["runs", "--json"]) == 1
    out, err = capsys.readouterr()
    assert "internal error: TypeError: a bug somewhere deep" in one_line(err)
    assert "--debug" in err and json.loads(out)["type"] == "TypeError"
    with pytest.raises(TypeError, match="a bug somewhere deep"):
        main(["runs", "--debug"])
    with pytest.raises(TypeError):
        main(["--debug", "runs"])
    monkeypatch.setenv("FTLAB_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["runs"])


def test_debug_shows_the_traceback_of_an_ftlab_error_too(tmp_path, monkeypatch):
    monkeypatch.delenv("FTLAB_DEBUG", raising=False)
    with pytest.raises(ConfigError, match="train.learning_rate"):
        main(["train", "--lr", "-1", "--debug", "--runs-dir", str(tmp_path)])


def test_a_real_process_prints_one_json_object_and_one_line():
    out = subprocess.run([sys.executable, "-m", "ftlab", "train", "--model", "tiny",
                          "--device", "nosuch", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    assert json.loads(out.stdout)["type"] == "ConfigError"
    assert "device = 'nosuch' is not allowed" in one_line(out.stderr)


def test_an_unreachable_hub_id_fails_in_seconds_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t0 = time.monotonic()
    rc = main(["train", "--model", "someone-ftlab-test/no-such-model-xyz", "--json",
               "--runs-dir", str(tmp_path)])
    elapsed = time.monotonic() - t0
    out, err = capsys.readouterr()
    assert rc == 2 and elapsed < 20, f"took {elapsed:.0f} s"
    printed = json.loads(out)
    assert printed["type"] == "ModelNotFoundError"
    # offline (here): the quick check says the hub cannot be reached; online: not found
    assert ("the model hub cannot be reached" in printed["error"]
            or "no such folder or hub model" in printed["error"])


def test_a_hub_id_offline_is_refused_at_once(monkeypatch):
    from ftlab.models import load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="no network access to the model hub"):
        load_tokenizer("someone-ftlab-test/no-such-model-xyz")
    assert time.monotonic() - t0 < 5
