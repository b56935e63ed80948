"""The CLI builds the same RunConfig and prints JSON a script can read.

The commands run in this process (``cli.main``, what ``python -m ftlab`` calls): a fresh
interpreter costs seconds of imports per call. ``test_hostile_cli`` runs real processes.
"""

import contextlib
import io
import json
from dataclasses import dataclass

import pytest

from ftlab.cli import main


@dataclass
class Out:
    returncode: int
    stdout: str
    stderr: str


def ftlab(*args: str) -> Out:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # what the interpreter would turn into an exit status
            code = e.code if isinstance(e.code, int) else 1
    return Out(code, out.getvalue(), err.getvalue())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora", "qlora", "prefix", "prompt"])
def test_params_json_on_the_embedded_model(method):
    out = ftlab("params", "--method", method, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"method", "trainable", "total", "percent"}
    assert report["method"] == method
    assert report["percent"] == pytest.approx(100 * report["trainable"] / report["total"])
    assert 134_000_000 < report["total"] < 138_000_000


def test_train_json_reports_final_figures_and_run_folder(tmp_path):
    out = ftlab("train", "--method", "lora", "--model", "tiny", "--preset", "cpu", "--steps",
                "2", "--size", "20", "--samples", "0", "--json", "--runs-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["status"] == "completed" and res["steps"] == 2
    assert res["run_dir"].startswith(str(tmp_path)) and res["final_val_loss"] > 0
    listed = json.loads(ftlab("runs", "--json", "--runs-dir", str(tmp_path)).stdout)
    assert [r["status"] for r in listed] == ["completed"]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--method", "adapter"], "method = 'adapter' is not allowed"),
        (["--set", "r=0"], "method.r = 0 is not allowed: expected a number >= 1"),
        (["--lr", "-0.1"], "train.learning_rate = -0.1 is not allowed"),
        (["--batch-size", "0"], "train.batch_size = 0 is not allowed"),
        (["--set", "rank"], "--set = 'rank' is not allowed: expected KEY=VALUE"),
    ],
)
def test_bad_flags_give_one_clear_line_and_exit_2(args, phrase):
    out = ftlab("train", "--model", "tiny", "--json", *args)
    assert out.returncode == 2
    assert phrase in json.loads(out.stdout)["error"]
    assert "Traceback" not in out.stderr


def test_train_flags_are_generated_from_the_knobs_they_set():
    from ftlab import cli
    from ftlab.config import DataConfig
    from ftlab.knobs import knobs_of

    train = next(a for a in cli.build_parser()._subparsers._actions
                 if a.dest == "command").choices["train"]
    flags = {o: a for a in train._actions for o in a.option_strings}
    assert set(cli.TRAIN_FLAGS) <= set(flags)
    size = flags["--size"]
    assert size.type is int and size.help.startswith(knobs_of(DataConfig)["size"]["help"])
    assert "60/20/20" not in size.help  # the size is of the training rows only
    assert flags["--preset"].choices == ["auto", "cpu", "gpu"]
    assert flags["--lr"].type is float and flags["--save-weights"].nargs == 0
    args = cli.build_parser().parse_args(["train", "--lr", "0.01", "--size", "30",
                                          "--save-weights", "--data", "x.jsonl"])
    cfg = cli.config_from_args(args)
    assert (cfg.train.learning_rate, cfg.data.size, cfg.save_weights, cfg.data.path) == (
        0.01, 30, True, "x.jsonl")
