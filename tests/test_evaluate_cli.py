"""`ftlab eval` from a shell: JSON with suite, score, n and breakdown; clear errors."""

import argparse
import json

import pytest

from ftlab.errors import ConfigError
from ftlab.evaluate import cli


def parse(*argv):
    parser = argparse.ArgumentParser(prog="ftlab")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", *argv])


def test_eval_prints_json_for_a_model_spec(capsys):
    args = parse("--suite", "benchmark", "--json", "--model", "tiny", "--preset", "cpu")
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "benchmark" and out["n"] == 50
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
