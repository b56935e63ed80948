"""``ftlab`` on the command line: the same RunConfig as the notebooks, JSON for scripts.

    ftlab prepare                       convert the embedded model once (make does this)
    ftlab params --method lora --json   parameter report
    ftlab train --method lora --preset cpu --json [--lr 1e-3 --steps 20 --set r=16]
    ftlab train --config run.yaml [--set train.max_steps=2]   a config file (or run folder)
    ftlab runs [--json]                 list run folders (damaged ones named)
    ftlab export RUN --format gguf [--quant q8_0] [--out DIR]   take a trained model home
    ftlab env [--json]                  library versions against the tested ranges, device
    ftlab eval --suite benchmark --json (see ftlab.evaluate.cli)

Every problem ftlab can explain prints as one line (a JSON object with --json) and exits 2;
Ctrl-C during a run prints what was measured and exits 130. --debug (or FTLAB_DEBUG=1)
shows Python's traceback instead.

    torchrun --nproc_per_node=2 -m ftlab train --config run.yaml   one run, 2 processes
    (rank 0 prints and writes the one run folder: docs/distributed.md)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from .config import RunConfig
from .errors import ConfigError, FtlabError
from .knobs import argparse_options, knobs_of
from .methods import METHODS

EXIT_ERROR = 2  # a problem with the input, the files or the environment (one line printed)
EXIT_INTERNAL = 1  # a bug in ftlab or a library: one line, the traceback with --debug
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class UsageError(FtlabError):
    """A command line argparse refused (unknown flag, a value of the wrong type)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a refused command line is a ``UsageError`` printed like every other."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _number(text: str) -> int | float:
    """What an int-typed knob flag reads (``--steps 2.0``): the number as written, so that
    the knob door (``ftlab.knobs.stored``, ``validate``) decides about ``2.0`` and ``2.5``
    exactly as for ``--set steps=2.0`` and ``replace(steps=2.0)``. Not a number: argparse's
    own "invalid int value" line."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _value(text: str) -> Any:
    """Parse a --set value: JSON where it parses (numbers, true, null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# The flags that set a knob: flag -> the knob's dotted name. Each flag's type, choices and
# help come from that knob's declaration (``ftlab.config``, ``ftlab.knobs``): the CLI
# documents exactly what validation checks. Every other knob goes through --set.
RUN_FLAGS = {"--model": "model"}
TRAIN_FLAGS = {
    "--preset": "preset", "--lr": "train.learning_rate", "--steps": "train.max_steps",
    "--batch-size": "train.batch_size", "--size": "data.size", "--task": "data.task",
    "--data": "data.path", "--seed": "seed", "--patience": "eval.early_stopping_patience",
    "--eval-every": "eval.every", "--samples": "eval.samples", "--device": "device",
    "--save-weights": "save_weights", "--report-to": "train.report_to",
}


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")  # what argparse names the flag's value


def knob_meta(path: str) -> dict:
    """The declaration (help, range, type) of a knob by its dotted name (``data.size``)."""
    *sections, name = path.split(".")
    obj: Any = RunConfig()
    for section in sections:
        obj = getattr(obj, section)
    return knobs_of(obj)[name]


def _add_knob_flags(p: argparse.ArgumentParser, flags: dict[str, str]) -> None:
    for flag, path in flags.items():
        p.add_argument(flag, **argparse_options(knob_meta(path)))


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Build the run's config from flags: the one path the CLI shares with notebooks.

    ``--config FILE`` (``RunConfig.from_file``) is the start; the flags given, then each
    ``--set``, change it through ``replace``, so they win over the file.
    """
    source = getattr(args, "config", None)
    start = RunConfig.from_file(source) if source is not None else RunConfig()
    method = getattr(args, "method", None)  # only when given: a file's method keeps its knobs
    changes: dict[str, Any] = {} if method is None else {"method": method}
    for flag, path in {**RUN_FLAGS, **TRAIN_FLAGS}.items():
        value = getattr(args, _dest(flag), None)
        if value is not None and value is not False:  # False: a switch not given
            changes[path] = value
    for item in getattr(args, "set", None) or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError("--set", item, "KEY=VALUE, e.g. r=16 or train.warmup_steps=2")
        if not key.strip():
            raise ConfigError("--set", item, "KEY=VALUE with a knob's name before the '=', "
                              "but the name is empty", "Write --set name=value, e.g. "
                              "--set r=16 or --set train.warmup_steps=2.")
        changes[key.strip()] = _value(text)
    return start.replace(**changes)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    # The knob flags of type int read numbers as written (`_number`): the knob door judges
    # them. (argparse's registry: the flag's type stays `int`, and so do its messages.)
    p.register("type", int, _number)
    p.add_argument("--config", metavar="FILE",
                   help="start from a run config file (.json, .yaml or .yml, as "
                   "RunConfig.save writes) or a run folder (its config.json); the flags "
                   "given and --set win over it")
    p.add_argument("--method", help="one of: " + ", ".join(METHODS)
                   + f" (default: the config file's, else {RunConfig().method.name})")
    _add_knob_flags(p, RUN_FLAGS)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any knob, e.g. r=16, num_virtual_tokens=10, train.warmup_steps=2; "
                   "rl=on makes the run a GRPO run, whose knobs are rl.kl, rl.generations ...; "
                   "pref=on a preference run (pref.loss=dpo|ipo|kto|orpo|simpo, pref.beta, "
                   "pref.path ...)")
    p.add_argument("--json", action="store_true", help="print JSON only")


def cmd_prepare(args: argparse.Namespace) -> int:
    from .models import embedded_model_dir, tiny_model_dir

    path = embedded_model_dir()
    tiny_model_dir()
    print(json.dumps({"embedded_model": str(path)}) if args.json else f"embedded model: {path}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from .engine import build_model

    cfg = config_from_args(args).validate()
    from .methods import param_report

    model, _ = build_model(cfg)
    report = param_report(model, cfg.method.name)
    print(json.dumps(report.to_dict()) if args.json else str(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .engine import train
    from .engine.distributed import is_main
    from .errors import RunInterrupted
    from .models import choose_placement
    from .runs import writable_runs_root

    cfg = config_from_args(args).validate()
    choose_placement(cfg.device, cfg.dtype)  # a missing GPU is said before the model loads
    writable_runs_root(args.runs_dir)  # so is a runs folder that cannot be written
    try:
        result = train(cfg, runs_dir=args.runs_dir, progress=True)
    except KeyboardInterrupt as e:
        if not is_main():
            return EXIT_INTERRUPTED  # rank 0 prints the run (several processes, one run)
        run = e.run if isinstance(e, RunInterrupted) else None
        out = {"status": "interrupted", "run_dir": str(run.path) if run else None,
               "steps": 0, **(run.final if run else {}),
               "error": str(e) or "Interrupted before the run folder was written."}
        if args.json:
            print(json.dumps(out, default=str))
        else:
            print(f"ftlab: interrupted: {out['error']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not is_main():
        return 0
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
    from .runs import scan_runs

    rows = [check.summary() for check in scan_runs(args.runs_dir)]
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    if not rows:
        print("no runs yet: train one with `ftlab train --method lora --preset cpu`")
    for r in rows:
        val = "-" if r["val_loss"] is None else f"{r['val_loss']:.3f}"
        print(f"{r['run']:<48} {r['status']:<14} val_loss {val}")
        for problem in r["problems"]:
            print(f"{'':<4}damaged: {problem}")
    damaged = sum(1 for r in rows if r["problems"])
    if damaged:
        print(f"{damaged} of {len(rows)} run folders are damaged (named above); what "
              "could be read is shown.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    done = export(args.run, args.out, args.format, quant=args.quant,
                  overwrite=args.overwrite, check=not args.no_check)
    if args.json:
        check = done.check
        print(json.dumps({"format": done.format, "quant": done.quant, "path": str(done.path),
                          "files": done.files, "identical": check and check.identical,
                          "answers": check and check.total,
                          "agreement": check and check.agreement}))
    else:
        print(done)
        print(f"model card: {done.path / 'README.md'}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from .environment import check_environment

    report = check_environment()
    print(json.dumps(report.to_dict()) if args.json else str(report))
    if report.ok:
        return 0
    names = ", ".join(f"{p.name} {p.installed or '(missing)'}" for p in report.problems)
    print(f"ftlab: error: not the tested versions: {names} (the fix is printed above)",
          file=sys.stderr)
    return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ftlab", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show Python's traceback on errors (or set FTLAB_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="convert the embedded model once")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("params", help="parameter report of a method")
    _add_run_flags(p)
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("train", help="fine-tune and print the final figures")
    _add_run_flags(p)
    _add_knob_flags(p, TRAIN_FLAGS)
    p.add_argument("--runs-dir", help="where run folders go (default: $FTLAB_RUNS or ./runs)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list run folders")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("export", help="write a run's model as an adapter, merged or GGUF")
    p.add_argument("run", help="a run folder, or a run's name from `ftlab runs`")
    p.add_argument("--format", default="adapter", choices=("adapter", "merged", "gguf"),
                   help="adapter: what PEFT saves; merged: the whole model, LoRA folded in; "
                        "gguf: one file for llama.cpp / Ollama")
    p.add_argument("--quant", default="q8_0", choices=("f32", "f16", "q8_0"),
                   help="GGUF weight type (default q8_0; f32 keeps every weight)")
    p.add_argument("--out", help="folder to write (default: exports/<run>-<format>)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder that already holds files")
    p.add_argument("--no-check", action="store_true",
                   help="skip loading the export back and comparing its answers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("env", help="library versions against the tested ranges, and the device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_env)

    try:
        from .evaluate.cli import add_parser as add_eval_parser
    except ImportError:
        pass
    else:
        add_eval_parser(sub)
    for p in sub.choices.values():  # --debug also after the command: `ftlab train --debug`
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show Python's traceback on errors (or set FTLAB_DEBUG=1)")
    return parser


def _debug(args: argparse.Namespace | None, argv: list[str]) -> bool:
    flag = os.environ.get("FTLAB_DEBUG", "").lower() in ("1", "true", "yes", "on")
    return flag or bool(getattr(args, "debug", False)) or (args is None and "--debug" in argv)


def _report(e: BaseException, as_json: bool, internal: bool = False) -> None:
    """One line on stderr (and a JSON object on stdout for --json) for an error.

    Under a launcher, rank 0 reports as one process does; another rank says only a failure
    of its own run, on stderr, named by its rank (a wrong config is the same on every rank).
    """
    text = " ".join(str(e).split()) or type(e).__name__
    if internal:
        text = (f"internal error: {type(e).__name__}: {text} (this is a bug in ftlab or a "
                "library; run again with --debug for the traceback)")
    if not _main_rank():
        from .engine.distributed import rank

        if internal or getattr(e, "run", None) is not None:
            print(f"ftlab: error: [rank {rank()}] {text}", file=sys.stderr)
        return
    if as_json:
        out = {"error": text, "type": type(e).__name__}
        run = getattr(e, "run", None)  # TrainingError: the run folder that kept the metrics
        if run is not None:
            out.update(status=run.status, run_dir=str(run.path))
        print(json.dumps(out, default=str))
    print(f"ftlab: error: {text}", file=sys.stderr)


def _main_rank() -> bool:
    """Rank 0 of a launched run, or no launcher (the engine loads only under one)."""
    if os.environ.get("WORLD_SIZE", "1").strip() in ("", "1"):
        return True
    from .engine.distributed import is_main

    return is_main()


def _sigterm_as_interrupt(signum, frame) -> NoReturn:
    raise KeyboardInterrupt  # `kill` and a closed terminal end a run like Ctrl-C: recorded


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None
    old_term = signal.getsignal(signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    try:
        args = build_parser().parse_args(argv)
        if main_thread:
            signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        return args.func(args)
    except FtlabError as e:
        if _debug(args, argv):
            raise
        _report(e, as_json=getattr(args, "json", "--json" in argv))
        return EXIT_ERROR
    except KeyboardInterrupt:
        if _debug(args, argv):
            raise
        if _main_rank():
            print("ftlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - one line instead of a traceback, unless asked
        if _debug(args, argv):
            raise
        _report(e, as_json=getattr(args, "json", "--json" in argv), internal=True)
        return EXIT_INTERNAL
    finally:
        if main_thread and old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
