"""Damaged run folders: the listing shows every readable run and names each damaged one.

A full disk, a crash mid-write or a hand edit damages one file of one folder. ``ftlab runs``
still lists every run, names what is damaged (and how many metrics lines were lost), and
never raises; ``ftlab eval --run`` on a damaged folder prints one line. Nothing is
rewritten: reading a folder never changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import ftlab
from ftlab.cli import main
from ftlab.engine import train
from ftlab.errors import FtlabError, RunFolderError, RunFolderWarning
from ftlab.runs import check_run, list_runs, load_run, scan_runs


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """One real run of the tiny model (3 steps, an evaluation at every step)."""
    cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(
        steps=3, size=20, **{"eval.samples": 0, "eval.every": 1, "train.batch_size": 4})
    run = train(cfg, runs_dir=tmp_path_factory.mktemp("made"), progress=False)
    assert run.status == "completed" and len(run.steps) == 3 and len(run.evals) == 4
    return run.path


def _edit(name: str, text: str | bytes):
    def damage(d: Path) -> None:
        (d / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return damage


def _cut_metrics(d: Path) -> None:
    """A crash mid-write: the final evaluation's line is cut in half, the end never came."""
    lines = (d / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1])["kind"] == "end" and json.loads(lines[-2])["kind"] == "eval"
    (d / "metrics.jsonl").write_bytes(b"".join(lines[:-2]) + lines[-2][:len(lines[-2]) // 2])


def _garble_metrics_line(d: Path) -> None:
    lines = (d / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    lines[2] = b"\xff\xfe\x00garbled by a full disk\n"
    (d / "metrics.jsonl").write_bytes(b"".join(lines))


def _bad_number(d: Path) -> None:
    result = json.loads((d / "result.json").read_text())
    result["final"]["final_val_loss"] = "n/a"
    (d / "result.json").write_text(json.dumps(result))


def _unknown_field(d: Path) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg["from_the_future"] = 1
    (d / "config.json").write_text(json.dumps(cfg))


def _dead_runner(d: Path) -> None:  # SIGKILL: status stays "running", its pid is gone
    (d / "result.json").unlink()
    (d / "status.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345}))


# (case, damage, readable, status listed, phrase naming the damage; None: intact)
CASES = [
    ("corrupt config", _edit("config.json", '{"model": '), False, "damaged",
     "config.json is not valid JSON"),
    ("empty config", _edit("config.json", ""), False, "damaged", "empty: the write was cut off"),
    ("latin-1 config", _edit("config.json", b'{"model": "caf\xe9"}'), False, "damaged",
     "config.json is not valid JSON"),
    ("config a list", _edit("config.json", "[1, 2]"), False, "damaged",
     "config.json holds a list"),
    ("config from elsewhere", _unknown_field, False, "damaged",
     "config.json does not describe a run"),
    ("config missing", lambda d: (d / "config.json").unlink(), False, "damaged",
     "config.json is missing"),
    ("damaged result", _edit("result.json", "garbage{"), True, "completed",
     "result.json is not valid JSON"),
    ("result missing", lambda d: (d / "result.json").unlink(), True, "completed",
     "result.json is missing"),
    ("result value not a number", _bad_number, True, "completed",
     "final.final_val_loss = 'n/a' is not a number"),
    ("metrics cut mid-line", _cut_metrics, True, "completed",
     "metrics.jsonl: 1 of 7 lines damaged (line 7), dropped; the other 6 kept"),
    ("metrics line garbled", _garble_metrics_line, True, "completed",
     "metrics.jsonl: 1 of 8 lines damaged (line 3)"),
    ("damaged status", _edit("status.json", "[1"), True, "completed",
     "status.json is not valid JSON"),
    ("unknown status", _edit("status.json", '{"status": "exploded", "pid": 1}'), True,
     "completed", "status.json names an unknown status 'exploded'"),
    ("damaged env", _edit("env.json", "\x00"), True, "completed", "env.json is not valid JSON"),
    ("killed runner", _dead_runner, True, "interrupted", None),
]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def two_runs(good_run, tmp_path) -> tuple[Path, Path, Path]:
    """A runs folder with an intact run and a copy of it to damage."""
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(good_run, root / "a-intact")
    shutil.copytree(good_run, root / "b-damaged")
    return root, root / "a-intact", root / "b-damaged"


@pytest.mark.parametrize(("case", "damage", "readable", "status", "phrase"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_listing_shows_every_run_and_names_the_damage(
        two_runs, capsys, case, damage, readable, status, phrase):
    root, intact, damaged = two_runs
    damage(damaged)
    before = _digest(damaged)

    rc = main(["runs", "--runs-dir", str(root)])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    assert "a-intact" in out and "b-damaged" in out  # every run is listed
    assert (phrase in out) if phrase else ("damaged:" not in out)

    assert main(["runs", "--json", "--runs-dir", str(root)]) == 0
    rows = {r["run"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["a-intact"]["status"] == "completed" and rows["a-intact"]["problems"] == []
    row = rows["b-damaged"]
    assert row["status"] == status
    assert any(phrase in p for p in row["problems"]) if phrase else row["problems"] == []
    if readable:
        assert row["method"] == "lora"  # what could be read is shown
    assert _digest(damaged) == before  # reading changed nothing


@pytest.mark.parametrize(("case", "damage", "readable", "status", "phrase"), CASES,
                         ids=[c[0] for c in CASES])
def test_loading_a_damaged_run_raises_or_warns_and_keeps_what_is_readable(
        two_runs, good_run, case, damage, readable, status, phrase):
    root, intact, damaged = two_runs
    damage(damaged)
    original = load_run(good_run)
    if not readable:
        with pytest.raises(RunFolderError, match=phrase.replace("(", r"\(")):
            load_run(damaged)
        with pytest.warns(RunFolderWarning, match="b-damaged is damaged \\(left out\\)"):
            runs = list_runs(root)
        assert [r.name for r in runs] == ["a-intact"]
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(damaged)
    assert run.status == status
    assert [str(w.message) for w in caught if issubclass(w.category, RunFolderWarning)] == (
        [f"Run folder b-damaged is damaged: {'; '.join(check_run(damaged).problems)}"]
        if phrase else [])
    assert run.config == original.config
    if case == "metrics cut mid-line":  # the cut line was the final evaluation
        assert run.steps == original.steps and run.evals == original.evals[:-1]
    elif case == "metrics line garbled":
        assert len(run.steps) + len(run.evals) == len(original.steps) + len(original.evals) - 1
    else:
        assert run.steps == original.steps and run.evals == original.evals
    assert [c.name for c in scan_runs(root)] == ["a-intact", "b-damaged"]


@pytest.mark.parametrize("case", ["corrupt config", "damaged result", "metrics cut mid-line"])
def test_eval_on_a_damaged_run_prints_one_line(two_runs, capsys, case):
    root, intact, damaged = two_runs
    _case, damage, readable, _status, phrase = next(c for c in CASES if c[0] == case)
    damage(damaged)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunFolderWarning)
        rc = main(["eval", "--suite", "format", "--run", str(damaged), "--json"])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    error = json.loads(out)["error"]
    # an unreadable config is named; a readable run gets to the next question (no weights)
    assert (phrase in error) if not readable else ("saved no weights" in error)


def test_eval_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["eval", "--suite", "format", "--run", str(tmp_path), "--json"]) == 2
    assert "is not a run folder" in json.loads(capsys.readouterr().out)["error"]


def test_stray_files_and_folders_are_not_runs(two_runs, capsys):
    root, _, damaged = two_runs
    shutil.rmtree(damaged)
    (root / "notes.txt").write_text("mine")
    (root / "empty-folder").mkdir()
    (root / ".ipynb_checkpoints").mkdir()
    assert [c.name for c in scan_runs(root)] == ["a-intact"]
    assert main(["runs", "--runs-dir", str(root)]) == 0
    assert "damaged:" not in capsys.readouterr().out


def test_a_killed_cli_run_lists_as_interrupted(tmp_path, good_run):
    """SIGKILL leaves status 'running' with a pid that is gone: the listing says interrupted."""
    root = tmp_path / "runs"
    root.mkdir()
    folder = root / "killed"
    shutil.copytree(good_run, folder)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that surely belonged to a process that has ended
    (folder / "status.json").write_text(json.dumps({"status": "running", "pid": proc.pid}))
    assert load_run(folder).status == "interrupted"
    (folder / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    assert load_run(folder).status == "running"  # a live runner is still running
    for pid in (0, -1, "x", None):  # never "alive" by signalling a whole group
        (folder / "status.json").write_text(json.dumps({"status": "running", "pid": pid}))
        assert load_run(folder).status == "interrupted"


def test_load_run_of_a_missing_folder_is_an_ftlab_error(tmp_path):
    with pytest.raises(FtlabError, match="is not a run folder"):
        load_run(tmp_path / "nope")
