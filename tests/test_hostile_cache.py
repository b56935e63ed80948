"""The run cache never serves a damaged run, and train()'s own arguments are checked at its door.

A run is reused (``train(reuse=True)``, a lab's runs) only when its folder is complete and
consistent: config, metrics with the end and the evaluations the result reports, a result
whose figures read, a status that finished, weights that load. Anything else is trained
again and the damaged folder is named in one warning and kept as it was. A finished status
is written last, so a run whose weights could not be saved is not "completed".
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

import psutil
import pytest
from transformers import TrainerCallback

import ftlab
from ftlab.engine import train
from ftlab.errors import (
    ConfigError,
    EnvPathError,
    RunFolderError,
    RunFolderWarning,
    TrainingError,
)
from ftlab.instruments.adapters import model_of
from ftlab.runs import list_runs, load_run, load_trained


def _config(**more) -> ftlab.RunConfig:
    return ftlab.RunConfig(model="tiny", preset="cpu").replace(
        steps=1, size=10, **{"eval.samples": 0, **more})


CFG = _config(save_weights=True)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """One real run of the tiny model, weights saved (a LoRA adapter)."""
    run = train(CFG, runs_dir=tmp_path_factory.mktemp("made"), progress=False)
    assert run.status == "completed" and (run.path / "weights").is_dir()
    return run.path


def _lines(d: Path) -> list[bytes]:
    return (d / "metrics.jsonl").read_bytes().splitlines(keepends=True)


def _drop_lines(kinds_from_end: tuple[str, ...]):
    """Remove whole lines at the end (a file rewritten short): nothing is cut mid-line."""
    def damage(d: Path) -> None:
        lines = _lines(d)
        for kind in kinds_from_end:
            assert json.loads(lines[-1])["kind"] == kind
            lines.pop()
        (d / "metrics.jsonl").write_bytes(b"".join(lines))
    return damage


def _drop_final_eval(d: Path) -> None:
    lines = [ln for ln in _lines(d) if not (json.loads(ln)["kind"] == "eval"
                                            and json.loads(ln)["step"] == 1)]
    (d / "metrics.jsonl").write_bytes(b"".join(lines))


def _cut_metrics(d: Path) -> None:
    lines = _lines(d)
    (d / "metrics.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])


def _result(key: str, value) -> callable:
    def damage(d: Path) -> None:
        result = json.loads((d / "result.json").read_text())
        result[key] = value
        (d / "result.json").write_text(json.dumps(result))
    return damage


def _config_edit(d: Path) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg["seed"] = 7  # the key in result.json still says seed 0
    (d / "config.json").write_text(json.dumps(cfg))


def _cut_weights(d: Path) -> None:  # a kill while saving, under the old order
    f = d / "weights" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _status(obj) -> callable:
    return lambda d: (d / "status.json").write_text(json.dumps(obj))


# (case, damage, phrase of the one-line warning)
DAMAGE = [
    ("metrics emptied", lambda d: (d / "metrics.jsonl").write_text(""),
     "metrics.jsonl is empty although the run completed"),
    ("metrics removed", lambda d: (d / "metrics.jsonl").unlink(),
     "metrics.jsonl is missing although the run completed"),
    ("metrics cut mid-line", _cut_metrics, "metrics.jsonl: 1 of 4 lines damaged (line 4)"),
    ("metrics short of its end", _drop_lines(("end", "eval")),
     "metrics.jsonl does not record the run's end"),
    ("final evaluation gone", _drop_final_eval,
     "metrics.jsonl lacks the final evaluation (step 1)"),
    ("final not an object", _result("final", "garbage"), "'final' is not an object"),
    ("a final figure not a number", _result("final", {"steps": "one"}),
     "final.steps = 'one' is not a number"),
    ("config edited", _config_edit, "config.json does not match the run's cache key"),
    ("weights cut", _cut_weights, "weights/adapter_model.safetensors is cut"),
    ("adapter config removed", lambda d: (d / "weights" / "adapter_config.json").unlink(),
     "weights/adapter_config.json is missing"),
    ("adapter config cut", lambda d: (d / "weights" / "adapter_config.json").write_text("{"),
     "weights/adapter_config.json is not a valid JSON object"),
    ("weights removed", lambda d: shutil.rmtree(d / "weights"),
     "weights/ is missing although the run was trained with save_weights=True"),
    ("weights emptied", lambda d: (d / "weights" / "adapter_model.safetensors").unlink(),
     "weights/ holds no weights file"),
    ("status running, pid 1", _status({"status": "running", "pid": 1}),
     "the run never finished: status.json says"),
    ("status failed", _status({"status": "failed", "pid": 1}),
     "the run never finished: status.json says 'failed'"),
]


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def cache(good_run, tmp_path) -> tuple[Path, Path]:
    """A runs folder holding one copy of the good run: (runs folder, the copy)."""
    root = tmp_path / "runs"
    shutil.copytree(good_run, root / good_run.name)
    return root, root / good_run.name


def test_an_intact_run_is_reused_without_a_word(cache):
    root, folder = cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = train(CFG, runs_dir=root, reuse=True, progress=False)
    assert run.from_cache and run.path == folder and run.final["steps"] == 1
    assert [e["step"] for e in run.evals] == [0, 1]


@pytest.mark.parametrize(("case", "damage", "phrase"), DAMAGE, ids=[c[0] for c in DAMAGE])
def test_a_damaged_run_is_trained_again_named_and_kept(cache, case, damage, phrase):
    root, folder = cache
    damage(folder)
    before = _digest(folder)
    with pytest.warns(RunFolderWarning) as caught:
        run = train(CFG, runs_dir=root, reuse=True, progress=False)
    said = [str(w.message) for w in caught if issubclass(w.category, RunFolderWarning)]
    assert len(said) == 1 and "\n" not in said[0], said
    assert said[0].startswith(f"Run folder {folder} is not reused, it is damaged: ")
    assert phrase in said[0] and said[0].endswith("Training again; the folder is kept.")
    assert not run.from_cache and run.status == "completed" and run.path != folder
    assert [e["step"] for e in run.evals] == [0, 1]
    assert _digest(folder) == before  # kept as it was, never deleted or repaired
    with warnings.catch_warnings():  # the fresh run is the newest: reused, nothing said
        warnings.simplefilter("error")
        again = train(CFG, runs_dir=root, reuse=True, progress=False)
    assert again.from_cache and again.path == run.path


def test_a_lab_does_not_read_a_damaged_runs_step_0_evaluation_as_its_final_one(tmp_path):
    """The issue's case: metrics cut back to the base model's evaluation, then the lab asks
    for the final ``format.score``."""
    from ftlab.labs.format_mismatch import FormatMismatch

    lab = FormatMismatch(model="tiny", preset="cpu", steps=1, size=10,
                         runs_dir=tmp_path / "runs", **{"eval.samples": 0})
    first = lab.run("matched", progress=False)
    assert not first.from_cache and first.metric("format.score") is not None
    lines = _lines(first.path)  # keep the start and the step-0 evaluation, cut the rest
    kept = [ln for ln in lines if json.loads(ln)["kind"] != "end"
            and json.loads(ln).get("step") == 0]
    (first.path / "metrics.jsonl").write_bytes(b"".join(kept))
    with pytest.warns(RunFolderWarning, match=f"{first.path.name} is not reused"):
        again = lab.run("matched", progress=False)
    assert not again.from_cache and again.path != first.path
    assert again.evals[-1]["step"] == 1 and again.evals[-1]["full"]
    assert again.metric("format.score") == again.evals[-1]["metrics"]["format.score"]
    assert first.path.is_dir()


@pytest.mark.parametrize(("case", "damage", "phrase"),
                         [c for c in DAMAGE if c[2].startswith("weights/")],
                         ids=[c[0] for c in DAMAGE if c[2].startswith("weights/")])
def test_damaged_weights_are_named_before_peft_or_safetensors_read_them(
        cache, case, damage, phrase):
    root, folder = cache
    damage(folder)
    with pytest.raises(RunFolderError) as err:
        load_trained(folder)
    assert phrase in str(err.value) and "saved no weights" not in str(err.value)
    run = load_run(folder)
    with pytest.warns(RunFolderWarning, match="has damaged weights: .*Training the run again"):
        model, tok = model_of(run)
    assert model is not None and tok is not None


def test_intact_weights_load(cache):
    model, _ = load_trained(cache[1])
    assert hasattr(model, "peft_config")


def test_a_finished_status_is_written_after_everything_else(tmp_path):
    """A weights folder that cannot be put in place fails the run: it is never 'completed'."""

    class Squatter(TrainerCallback):  # a file where the weights are to go, made mid-run
        def on_train_end(self, args, state, control, **kw):
            (Path(args.output_dir) / "weights").write_text("in the way")

    root = tmp_path / "runs"
    with pytest.raises(TrainingError) as err:
        train(CFG, runs_dir=root, callbacks=[Squatter()], progress=False)
    run = err.value.run
    assert run.status == "failed" and load_run(run.path).status == "failed"
    assert json.loads((run.path / "result.json").read_text())["status"] == "failed"
    assert json.loads(_lines(run.path)[-1])["status"] == "failed"
    assert not (run.path / ".weights.partial").exists()
    fresh = train(CFG, runs_dir=root, reuse=True, progress=False)  # never served
    assert not fresh.from_cache
    # in a good run the status is the last file written, after weights and result
    times = {p.name: p.stat().st_mtime_ns for p in
             [fresh.path / "status.json", fresh.path / "result.json",
              fresh.path / "metrics.jsonl", *(fresh.path / "weights").iterdir()]}
    assert times["status.json"] >= times["result.json"] >= max(
        t for n, t in times.items() if n not in ("status.json", "result.json"))


def _running(folder: Path, **status) -> str:
    (folder / "result.json").unlink(missing_ok=True)
    (folder / "status.json").write_text(json.dumps({"status": "running", **status}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunFolderWarning)
        return next(r.status for r in list_runs(folder.parent))


def test_a_pid_alone_does_not_keep_a_run_running(cache):
    _, folder = cache
    me = psutil.Process().create_time()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        if not any("python" in a for a in _argv(1)):  # a container's init lives forever
            assert _running(folder, pid=1) == "interrupted"
        assert _running(folder, pid=1, started=psutil.Process(1).create_time()) == "running"
        assert _running(folder, pid=os.getpid(), started=me) == "running"  # what train writes
        # a pid reused by another process: its start time differs
        assert _running(folder, pid=os.getpid(), started=me - 3600) == "interrupted"
        assert _running(folder, pid=other.pid, started=me) == "interrupted"
        # no stamp (an older ftlab): a live Python process started before the status
        assert _running(folder, pid=other.pid) == "running"
        assert _running(folder, pid=other.pid, time=me - 3600) == "interrupted"
    finally:
        other.kill()
        other.wait()
    assert _running(folder, pid=other.pid, started=me) == "interrupted"  # gone


def _argv(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def test_train_writes_the_runners_start_time(tmp_path):
    run = train(_config(), runs_dir=tmp_path / "runs", progress=False)
    status = json.loads((run.path / "status.json").read_text())
    assert status["pid"] == os.getpid()
    assert status["started"] == pytest.approx(psutil.Process().create_time(), abs=1)


# -- train()'s own arguments ----------------------------------------------------------------
LONG = "a" * 5000

# (case, arguments, error, phrases)
BAD_ARGUMENTS = [
    ("runs_dir a number", dict(runs_dir=123), ConfigError,
     ["runs_dir = 123", "a folder path (str or pathlib.Path)"]),
    ("config a method name", dict(config="lora"), ConfigError,
     ["config = 'lora'", "expected a RunConfig", "ftlab.RunConfig(method='lora')"]),
    ("callbacks of names", dict(callbacks=["nosuch"]), ConfigError,
     ["callbacks = 'nosuch'", "TrainerCallback"]),
    ("one callback, not a list", dict(callbacks=TrainerCallback()), ConfigError,
     ["callbacks =", "Wrap one callback in a list"]),
    ("evaluators a list", dict(evaluators=[len]), ConfigError, ["evaluators = [", "a dict"]),
    ("evaluator not callable", dict(evaluators={"mine": 3}), ConfigError,
     ["evaluators['mine'] = 3", "a function (model, tok, ctx)"]),
    ("evaluator without a name", dict(evaluators={"": len}), ConfigError,
     ["evaluators = ''", "non-empty strings"]),
    ("listener not callable", dict(on_event="print"), ConfigError, ["on_event = 'print'"]),
    ("runs_dir 5000 characters", dict(runs_dir=LONG), EnvPathError,
     ["runs_dir (--runs-dir) = 'aaaa", "(5000 characters)", "File name too long"]),
    ("runs_dir under a long name", dict(runs_dir=f"nosuch/{LONG}/runs"), EnvPathError,
     ["(5012 characters)", "File name too long"]),
]


@pytest.mark.parametrize(("case", "kwargs", "error", "phrases"), BAD_ARGUMENTS,
                         ids=[c[0] for c in BAD_ARGUMENTS])
def test_train_refuses_a_bad_argument_in_one_line_before_any_folder(
        tmp_path, monkeypatch, case, kwargs, error, phrases):
    monkeypatch.chdir(tmp_path)  # a relative runs_dir lands here
    monkeypatch.setenv("FTLAB_RUNS", str(tmp_path / "runs"))
    args = {"config": _config(), "progress": False, **kwargs}
    with pytest.raises(error) as err:
        train(args.pop("config"), **args)
    msg = str(err.value)
    assert all(p in msg for p in phrases), msg
    assert "\n" not in msg and len(msg) < 400
    assert not (tmp_path / "runs").exists() and sorted(os.listdir(tmp_path)) == []


def test_a_long_ftlab_runs_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_RUNS", str(tmp_path / ("b" * 5000)))
    for call in (lambda: train(_config(), progress=False), list_runs):
        with pytest.raises(EnvPathError, match=r"^FTLAB_RUNS = .*\(\d+ characters\)' cannot "
                           r"be used \(File name too long: at most \d+ characters a name\)"):
            call()


def test_an_evaluator_that_raises_is_named_and_the_run_recorded(tmp_path):
    def mine(model, tok, ctx):
        return 1 / 0

    with pytest.raises(TrainingError) as err:
        train(_config(), evaluators={"good": lambda m, t, c: 1.0, "mine": mine},
              runs_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert msg.startswith("Training failed at step 0: ZeroDivisionError: division by zero "
                          "(raised by the evaluator 'mine'). Fix the evaluator")
    assert "'good'" not in msg
    assert err.value.run.status == "failed" and load_run(err.value.run.path).status == "failed"


def test_an_evaluator_returning_text_is_named(tmp_path):
    with pytest.raises(TrainingError, match=r"ValueError: .* \(raised by the evaluator "
                                            r"'words'\)"):
        train(_config(), evaluators={"words": lambda m, t, c: "fine"}, runs_dir=tmp_path,
              progress=False)
