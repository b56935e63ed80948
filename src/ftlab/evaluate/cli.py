"""``ftlab eval``: one evaluation suite from a shell, as JSON for scripts or as a table."""

from __future__ import annotations

import argparse
import json
import sys

from ..data.tasks import TASKS
from ..errors import ConfigError
from .suite import SUITE_PRESETS, SUITES, run_suite


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "eval", help="evaluate a model or a trained run on one suite",
        description="Evaluate the embedded model, a model spec or a trained run on one "
        "suite: benchmark (broad multiple choice), probes (instruction following), "
        "format (output validity on a task) or task (task score).")
    p.add_argument("--suite", required=True, choices=list(SUITES))
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--model", default=None, help="model spec (default: the embedded model)")
    p.add_argument("--run", default=None, metavar="DIR", help="a trained run folder")
    p.add_argument("--task", default=None, help="task for the format and task suites: "
                   + ", ".join(TASKS) + " (default: the run's own, else arithmetic)")
    p.add_argument("--preset", default="auto", choices=["auto", *SUITE_PRESETS],
                   help="cpu: a fixed subset (about a minute for all suites); gpu: everything")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the task's held-out rows (default: the run's own, else 0)")
    p.set_defaults(func=main)
    return p


def _load(args):
    if args.run and args.model:
        raise ConfigError("--model", args.model, "no --model together with --run",
                          "A run folder already names its model; give one of the two.")
    if args.run:
        from ..runs import load_trained  # lazily: runs pulls in the training stack

        return load_trained(args.run)
    from ..models import DEFAULT_MODEL, load_model

    return load_model(args.model or DEFAULT_MODEL)


def _run_rows(args, preset: str) -> tuple[str, int, list[dict] | None]:
    """Task, seed and held-out rows: a run's own (its task, seed and splits), else the args'."""
    if not args.run:
        return args.task or "arithmetic", args.seed or 0, None
    from ..data import load_splits
    from ..runs import load_run

    cfg = load_run(args.run).config
    for flag, given, own in (("--task", args.task, cfg.data.task),
                             ("--seed", args.seed, cfg.seed)):
        if given is not None and given != own:
            raise ConfigError(flag, given, f"the run's own value {own!r}",
                              "A run is scored on its own held-out rows; drop the flag.")
    if args.suite not in ("task", "format", "loss"):
        return cfg.data.task, cfg.seed, None
    splits = load_splits(cfg)
    rows = splits.validation if args.suite == "loss" else splits.test
    n = SUITE_PRESETS[preset].task_rows
    task = cfg.data.scored_as
    return task, cfg.seed, list(rows[:n])


def main(args: argparse.Namespace) -> int:
    """Run the suite and print it; returns the process exit status."""
    if args.task is not None and args.task not in TASKS:
        raise ConfigError("--task", args.task, "one of " + ", ".join(map(repr, TASKS)))
    model, tok = _load(args)
    preset = args.preset
    if preset == "auto":
        preset = "cpu" if next(model.parameters()).device.type == "cpu" else "gpu"
    task, seed, rows = _run_rows(args, preset)
    result = run_suite(args.suite, model, tok, preset=preset, task=task, seed=seed, rows=rows,
                       progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(result)
    for key, value in result.breakdown.items():
        print(f"  {key:<20} {value:.3f}")
    return 0
