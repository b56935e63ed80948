"""`ftlab eval` from a shell: JSON with suite, score, n and breakdown; clear errors."""

import argparse
import json

import pytest

from ftlab.errors import ConfigError
from ftlab.evaluate import cli
from ftlab.evaluate.suite import SUITE_PRESETS, benchmark_subset


def parse(*argv):
    parser = argparse.ArgumentParser(prog="ftlab")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", *argv])


def test_eval_prints_json_for_a_model_spec(capsys):
    args = parse("--suite", "benchmark", "--json", "--model", "tiny", "--preset", "cpu")
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "benchmark"
    assert out["n"] == len(benchmark_subset(SUITE_PRESETS["cpu"].benchmark_per_area))
    assert {"score", "breakdown", "chance", "ci95"} <= set(out)
    assert 0 <= out["score"] <= 1 and len(out["ci95"]) == 2


def test_eval_task_suite_json(capsys):
    args = parse("--suite", "format", "--json", "--model", "tiny", "--task", "sentiment")
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "format" and set(out["breakdown"]) == {"parses", "stops", "clean"}
    assert "chance" not in out


@pytest.mark.parametrize("argv", [["--suite", "task", "--task", "poetry"],
                                  ["--suite", "task", "--model", "tiny", "--run", "runs/x"]])
def test_bad_arguments_raise_config_error(argv):
    with pytest.raises(ConfigError):
        cli.main(parse(*argv))


def test_unknown_suite_is_refused_by_argparse():
    with pytest.raises(SystemExit):
        parse("--suite", "vibes")


def test_eval_of_a_run_scores_the_runs_own_held_out_rows(runs_dir, capsys):
    import ftlab
    from ftlab.engine import load_splits, train

    cfg = ftlab.RunConfig(model="tiny", preset="cpu", seed=3, save_weights=True).replace(
        task="sentiment", size=20, steps=1, batch_size=4, **{"eval.samples": 0})
    run = train(cfg, progress=False)
    args = parse("--suite", "task", "--json", "--run", str(run.run_dir))
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["extra"]["task"] == "sentiment" and out["extra"]["seed"] == 3
    assert out["n"] == SUITE_PRESETS["cpu"].task_rows
    held = {r["messages"][0]["content"] for r in load_splits(run.config).test}
    assert {e["prompt"] for e in out["examples"]} <= held
    with pytest.raises(ConfigError, match="--task = 'arithmetic'"):
        cli.main(parse("--suite", "task", "--run", str(run.run_dir), "--task", "arithmetic"))
