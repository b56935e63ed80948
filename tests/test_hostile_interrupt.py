"""Ctrl-C during a real run: a final JSON object, exit 130, no traceback, nothing lost.

The run is a real ``ftlab train`` process on the tiny model, interrupted with SIGINT in
the middle of training (and, separately, in the middle of the step-0 evaluation). Its
folder must say ``interrupted`` and keep every step and evaluation measured before it.
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

import ftlab
from ftlab.cli import main
from ftlab.errors import RunFolderWarning
from ftlab.runs import load_run


def _records(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


def _ctrl_c_on() -> None:
    """The child hears Ctrl-C even when the tests run in the background: a shell starts
    background jobs with SIGINT ignored, and Python then never turns it into
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it was interrupted: {proc.communicate()}")
        if predicate():
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the run never got there")


def _load_quietly(folder: Path) -> ftlab.Run:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RunFolderWarning)  # an intact folder: no warning
        return load_run(folder)


@pytest.mark.parametrize("as_json", [True, False], ids=["--json", "text"])
def test_ctrl_c_mid_training_prints_the_run_and_keeps_every_metric(tmp_path, as_json):
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftlab", "train", "--model", "tiny", "--steps", "5000",
         "--size", "40", "--batch-size", "4", "--samples", "0", "--eval-every", "3",
         "--runs-dir", str(runs), *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_on)

    def trained_a_while() -> bool:
        folders = list(runs.glob("*/metrics.jsonl"))
        if not folders:
            return False
        recs = _records(folders[0].parent)
        return (sum(r["kind"] == "step" for r in recs) >= 4
                and sum(r["kind"] == "eval" and r["step"] > 0 for r in recs) >= 1)

    _wait_for(trained_a_while, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    [folder] = runs.iterdir()
    run = _load_quietly(folder)
    assert run.status == "interrupted"
    assert json.loads((folder / "status.json").read_text())["status"] == "interrupted"
    n = run.final["steps"]
    assert 4 <= n < 5000
    assert [s["step"] for s in run.steps] == list(range(1, len(run.steps) + 1))
    assert len(run.steps) in (n - 1, n)  # the interrupt may fall between a step and its log
    assert [e["step"] for e in run.evals] == list(range(0, n + 1, 3))[:len(run.evals)]
    assert len(run.evals) >= 2 and run.final["first_val_loss"] == run.evals[0]["val_loss"]
    assert run.final["best_val_loss"] == min(e["val_loss"] for e in run.evals)
    if as_json:
        printed = json.loads(out)  # one JSON object and nothing else on stdout
        assert printed["status"] == "interrupted" and printed["run_dir"] == str(folder)
        assert printed["steps"] == n and printed["best_val_loss"] == run.final["best_val_loss"]
        assert printed["error"].startswith(f"Interrupted at step {n}.")
    else:
        assert f"Interrupted at step {n}." in err and str(folder) in err


SLOW_STEP0 = textwrap.dedent("""
    import json, sys, time, pathlib
    import ftlab
    from ftlab.errors import RunInterrupted
    from ftlab.engine import train

    marker = pathlib.Path(sys.argv[2])

    def slow_probe(model, tok, ctx):  # a step-0 evaluation that takes a while, as on CPU
        if ctx.step == 0:
            marker.write_text("evaluating")
            time.sleep(120)
        return {"score": 1.0}

    cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(
        steps=3, size=20, **{"eval.samples": 0})
    try:
        train(cfg, evaluators={"slow": slow_probe}, runs_dir=sys.argv[1], progress=False)
    except RunInterrupted as e:
        print(json.dumps({"status": e.run.status, "run_dir": str(e.run.path),
                          "message": str(e), "steps": e.run.final["steps"]}))
        sys.exit(130)
""")


def test_ctrl_c_in_the_step_0_evaluation_keeps_the_run(tmp_path):
    runs, marker = tmp_path / "runs", tmp_path / "in-step-0"
    script = tmp_path / "run.py"
    script.write_text(SLOW_STEP0)
    proc = subprocess.Popen([sys.executable, str(script), str(runs), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_on)
    _wait_for(marker.exists, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, err
    printed = json.loads(out)
    assert printed["status"] == "interrupted" and printed["steps"] == 0
    assert "Interrupted at step 0." in printed["message"]
    assert printed["run_dir"] in printed["message"]
    folder = Path(printed["run_dir"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "env.json", "metrics.jsonl", "result.json", "status.json"]
    run = _load_quietly(folder)
    assert run.status == "interrupted" and run.error == "Interrupted at step 0."
    assert run.config.train.max_steps == 3 and run.final["steps"] == 0
    assert [r["kind"] for r in _records(folder)] == ["end"]  # the ending is an event too


def test_an_interrupt_before_the_run_folder_exists_still_prints_json(
        tmp_path, monkeypatch, capsys):
    """Ctrl-C while the model loads: no folder yet, the JSON says so, exit 130."""
    engine = importlib.import_module("ftlab.engine.supervised")

    def interrupted_load(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "build_model", interrupted_load)
    rc = main(["train", "--model", "tiny", "--json", "--runs-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 130 and "Traceback" not in err
    assert json.loads(out) == {"status": "interrupted", "run_dir": None, "steps": 0,
                               "error": "Interrupted before the run folder was written."}
    assert list(tmp_path.iterdir()) == []


RUN_FLAGS = {
    "supervised": ["--size", "40", "--batch-size", "4", "--samples", "0", "--eval-every", "3"],
    "grpo": ["--set", "rl=true", "--size", "10", "--batch-size", "2", "--samples", "0",
             "--set", "rl.generations=2", "--set", "rl.max_completion_length=6"],
}


@pytest.mark.parametrize("kind", sorted(RUN_FLAGS))
def test_ctrl_c_through_the_cli_names_the_run_folder_for_every_trainer(tmp_path, kind):
    """Every trainer goes through one lifecycle: SIGINT in the middle of a supervised or a
    GRPO run prints the run folder (not "before the run folder was written"), the folder
    says ``interrupted`` and keeps every step measured before the interrupt."""
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftlab", "train", "--model", "tiny", "--steps", "5000",
         *RUN_FLAGS[kind], "--runs-dir", str(runs), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_on)

    def trained_a_while() -> bool:
        folders = list(runs.glob("*/metrics.jsonl"))
        return bool(folders) and sum(r["kind"] == "step"
                                     for r in _records(folders[0].parent)) >= 3

    _wait_for(trained_a_while, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, err
    assert "Traceback" not in err
    [folder] = runs.iterdir()
    printed = json.loads(out)
    assert printed["status"] == "interrupted" and printed["run_dir"] == str(folder)
    assert str(folder) in printed["error"]
    run = _load_quietly(folder)
    assert run.status == "interrupted"
    assert (run.config.rl is not None) == (kind == "grpo")
    n = run.final["steps"]
    assert 3 <= n < 5000 and printed["steps"] == n
    assert len(run.steps) in (n - 1, n)
