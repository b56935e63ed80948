"""``ftlab`` on the command line: the same RunConfig as the notebooks, JSON for scripts.

    ftlab prepare                       convert the embedded model once (make does this)
    ftlab params --method lora --json   parameter report
    ftlab train --method lora --preset cpu --json [--lr 1e-3 --steps 20 --set r=16]
    ftlab runs [--json]                 list run folders
    ftlab eval --suite benchmark --json (see ftlab.evaluate.cli)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .config import RunConfig
from .errors import ConfigError, FtlabError
from .methods import METHODS


def _value(text: str) -> Any:
    """Parse a --set value: JSON where it parses (numbers, true, null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Build the run's config from flags: the one path the CLI shares with notebooks."""
    changes: dict[str, Any] = {"method": args.method}
    for flag, key in (("model", "model"), ("preset", "preset"), ("lr", "lr"),
                      ("steps", "steps"), ("batch_size", "batch_size"), ("size", "size"),
                      ("task", "task"), ("data", "data.path"), ("seed", "seed"),
                      ("patience", "patience"), ("eval_every", "eval_every"),
                      ("samples", "eval.samples"), ("device", "device")):
        value = getattr(args, flag, None)
        if value is not None:
            changes[key] = value
    if getattr(args, "save_weights", False):
        changes["save_weights"] = True
    for item in getattr(args, "set", None) or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError("--set", item, "KEY=VALUE, e.g. r=16 or train.warmup_steps=2")
        changes[key.strip()] = _value(text)
    return RunConfig().replace(**changes)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="lora", help="one of: " + ", ".join(METHODS))
    p.add_argument("--model", help="model spec (default: the embedded smollm2-135m)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any knob, e.g. r=16, num_virtual_tokens=10, train.warmup_steps=2")
    p.add_argument("--json", action="store_true", help="print JSON only")


def cmd_prepare(args: argparse.Namespace) -> int:
    from .models import embedded_model_dir, tiny_model_dir

    path = embedded_model_dir()
    tiny_model_dir()
    print(json.dumps({"embedded_model": str(path)}) if args.json else f"embedded model: {path}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from .train import build_model

    cfg = config_from_args(args).validate()
    from .methods import param_report

    model, _ = build_model(cfg)
    report = param_report(model, cfg.method.name)
    print(json.dumps(report.to_dict()) if args.json else str(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = config_from_args(args)
    result = train(cfg, runs_dir=args.runs_dir, progress=True)
    out = {"status": result.status, "run_dir": str(result.run_dir), **result.final}
    if args.json:
        print(json.dumps(out, default=str))
    else:
        for key in ("status", "run_dir", "steps", "train_loss", "first_val_loss",
                    "best_val_loss", "final_val_loss", "wall_s", "step_time_s",
                    "peak_memory_bytes"):
            print(f"{key:>18}: {out.get(key)}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .runs import compare, list_runs

    rows = compare(list_runs(args.runs_dir))
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print("no runs yet: train one with `ftlab train --method lora --preset cpu`")
    for r in rows:
        val = "-" if r["val_loss"] is None else f"{r['val_loss']:.3f}"
        print(f"{r['run']:<48} {r['status']:<14} val_loss {val}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="convert the embedded model once")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("params", help="parameter report of a method")
    _add_run_flags(p)
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("train", help="fine-tune and print the final figures")
    _add_run_flags(p)
    p.add_argument("--preset", choices=("auto", "cpu", "gpu"))
    p.add_argument("--lr", type=float, help="learning rate (default: the method's own)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--size", type=int, help="examples generated (60/20/20 split)")
    p.add_argument("--task", help="generated task name")
    p.add_argument("--data", help="a JSONL file of your own rows")
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int, help="early-stopping patience in evaluations")
    p.add_argument("--eval-every", type=int, dest="eval_every")
    p.add_argument("--samples", type=int, help="sample answers per evaluation")
    p.add_argument("--device")
    p.add_argument("--save-weights", action="store_true")
    p.add_argument("--runs-dir", help="where run folders go (default: $FTLAB_RUNS or ./runs)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list run folders")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    try:
        from .evaluate.cli import add_parser as add_eval_parser
    except ImportError:
        pass
    else:
        add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FtlabError as e:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(e), "type": type(e).__name__}))
        print(f"ftlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
