"""Run folders: every run leaves one that a later session can reload and compare.

A folder holds ``config.json``, ``env.json`` (versions, device, seed, git revision),
``metrics.jsonl`` (one event a line, appended as the run goes), ``status.json`` and, at the
end, ``result.json`` (and ``weights/`` if asked). Whole-file writes are atomic (write to a
temporary file, then rename). A run whose process died leaves ``status: running`` with a
pid that is gone; ``load_run`` reports it as ``interrupted``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import RunConfig
from .digest import digest
from .errors import (
    EnvPathError,
    FtlabError,
    RunFolderError,
    RunFolderWarning,
    writable_folder,
)
from .events import EvalLogged, RunEnded, SamplesLogged, StepLogged

PACKAGES = ("ftlab", "torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate")


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """Where run folders go: the argument, else FTLAB_RUNS, else ./runs (a folder)."""
    root = Path(runs_dir or os.environ.get("FTLAB_RUNS") or "runs").expanduser()
    if root.exists() and not root.is_dir():
        raise EnvPathError(_runs_variable(runs_dir), root, "is a file, not a folder",
                           "Point it at a folder for run folders (it is created if missing).")
    return root


def _runs_variable(runs_dir: str | Path | None) -> str:
    if runs_dir:
        return "runs_dir (--runs-dir)"
    return "FTLAB_RUNS" if os.environ.get("FTLAB_RUNS") else "the runs folder (FTLAB_RUNS unset)"


def writable_runs_root(runs_dir: str | Path | None = None) -> Path:
    """The runs folder, created and checked writable: call it before heavy work starts."""
    return writable_folder(runs_root(runs_dir), _runs_variable(runs_dir),
                           "Every run writes a folder there. Point FTLAB_RUNS (or --runs-dir) "
                           "at a writable folder.")


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def environment(device: str, seed: int) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "packages": versions, "device": device, "seed": seed, "git_revision": None}
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["git_revision"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


class RunWriter:
    """Creates a run folder and keeps it consistent while the run goes."""

    def __init__(self, config: RunConfig, device: str, runs_dir: str | Path | None = None):
        root = writable_runs_root(runs_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{config.method.name}-{config.hash()}"
        root.mkdir(parents=True, exist_ok=True)
        path, i = root / base, 1
        while True:  # two runs of one config in the same second, maybe in two processes
            try:
                path.mkdir()
                break
            except FileExistsError:
                path, i = root / f"{base}-{i}", i + 1
        self.path = path
        write_json(path / "config.json", config.to_dict())
        self.env = environment(device, config.seed)
        write_json(path / "env.json", self.env)
        self.set_status("running")
        self._metrics = open(path / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def set_status(self, status: str, **extra: Any) -> None:
        write_json(self.path / "status.json", {"status": status, "pid": os.getpid(),
                                               "time": time.time(), **extra})

    def log(self, record: dict) -> None:
        self._metrics.write(json.dumps(record, default=str) + "\n")
        self._metrics.flush()  # a crash keeps every line written so far

    def finish(self, status: str, result: dict, error: str | None = None) -> None:
        write_json(self.path / "result.json", result)
        self.set_status(status, error=error)

    def close(self) -> None:
        self._metrics.close()


@dataclass
class Run:
    """One run, live or read back: the same record either way.

    ``train()`` returns it with the trained ``model`` (and ``tokenizer``, ``splits``);
    ``load_run(path)`` reads the same fields back from the folder (``model`` is then
    ``None``: ``load_trained(path)`` rebuilds it when weights were saved).
    """

    path: Path
    config: RunConfig
    status: str
    env: dict = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    error: str | None = None
    cache_key: str | None = None
    from_cache: bool = False  # loaded from an earlier identical run instead of trained
    model: Any = field(default=None, repr=False, compare=False)
    tokenizer: Any = field(default=None, repr=False, compare=False)
    splits: Any = field(default=None, repr=False, compare=False)

    @property
    def run_dir(self) -> Path:
        return self.path

    @property
    def name(self) -> str:
        return self.path.name

    def metric(self, name: str, at: str = "final") -> float | None:
        """A namespaced evaluator metric at the first (``"first"``) or final evaluation."""
        evals = [e for e in self.evals if e.get("full", True)]
        if not evals:
            return None
        return (evals[0] if at == "first" else evals[-1]).get("metrics", {}).get(name)

    def curve(self, name: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of a metric: ``val_loss``, ``loss`` or a namespaced one."""
        if name == "loss":
            return [s["step"] for s in self.steps], [s["loss"] for s in self.steps]
        pts = [(e["step"], e[name] if name in e else e.get("metrics", {}).get(name))
               for e in self.evals]
        if all(v is None for _, v in pts):
            pts = [(s["step"], s.get("metrics", {}).get(name)) for s in self.steps]
        pts = [(x, y) for x, y in pts if y is not None]
        return [x for x, _ in pts], [y for _, y in pts]

    def summary(self) -> dict:
        f = self.final
        return {"run": self.name, "method": self.config.method.name, "status": self.status,
                "hash": self.config.hash(), "steps": f.get("steps"),
                "train_loss": f.get("train_loss"), "val_loss": f.get("final_val_loss"),
                "best_val_loss": f.get("best_val_loss"),
                "trainable_params": f.get("params", {}).get("trainable"),
                "peak_memory_bytes": f.get("peak_memory_bytes"), "wall_s": f.get("wall_s")}

    def to_dict(self) -> dict:
        return {"status": self.status, "run_dir": str(self.path), "final": self.final,
                "config": self.config.to_dict(), "cache_key": self.cache_key}


TrainResult = Run  # the name earlier notebooks used for what train() returns


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # no pid, or one that would signal a whole group (0, -1)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    except (OverflowError, ValueError):
        return False
    return True


# Files a run folder holds; a folder with any of them is a run folder (maybe damaged).
RUN_FILES = ("config.json", "status.json", "metrics.jsonl", "result.json", "env.json")
STATUSES = ("running", "completed", "early_stopped", "stopped", "interrupted", "failed")
_FINISHED = ("completed", "early_stopped", "stopped")  # these always wrote result.json first
_EVENTS = {e.kind: e for e in (StepLogged, EvalLogged, SamplesLogged, RunEnded)}
_NUMBERS = ("steps", "train_loss", "first_val_loss", "last_val_loss", "best_val_loss",
            "final_val_loss", "peak_memory_bytes", "wall_s", "step_time_s")
_MAX_METRICS_LINE = 10_000_000


@dataclass
class RunCheck:
    """A run folder as read from disk: the run (None when unreadable) and what is damaged.

    ``problems`` names each damaged file and what was lost ("metrics.jsonl: 2 of 40 lines
    damaged (lines 39, 40), dropped"); an empty list means the folder is intact.
    """

    path: Path
    run: Run | None
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    def summary(self) -> dict:
        """The listing's row: the run's summary (or blanks) plus ``problems``."""
        if self.run is not None:
            row = self.run.summary()
        else:
            row = dict.fromkeys(("method", "hash", "steps", "train_loss", "val_loss",
                                 "best_val_loss", "trainable_params", "peak_memory_bytes",
                                 "wall_s"))
            row.update(run=self.name, status="damaged")
        return {**row, "problems": list(self.problems)}


def check_run(path: str | Path) -> RunCheck:
    """Read a run folder, never raising for damage: every readable part is kept and every
    damaged part is named. A run left 'running' by a dead process is 'interrupted'."""
    p = Path(path)
    problems: list[str] = []
    config = _read_config(p, problems)
    status_rec = _read_part(p / "status.json", problems) or {}
    result = _read_part(p / "result.json", problems)
    env = _read_part(p / "env.json", problems) or {}
    status = status_rec.get("status")
    if status is not None and status not in STATUSES:
        problems.append(f"status.json names an unknown status {status!r}")
        status = None
    if status is None:  # no status.json, or a damaged one: the result's word, else cut off
        status = result.get("status") if result and result.get("status") in STATUSES else None
        status = status or "interrupted"
    if status == "running" and not _pid_alive(status_rec.get("pid")):
        status = "interrupted"
    if result is None and status in _FINISHED and (p / "status.json").is_file() and not (
            p / "result.json").exists():
        problems.append(f"result.json is missing although the run {status}: its final "
                        "figures are lost")
    final = _read_final(result or {}, problems)
    error = status_rec.get("error")
    key = (result or {}).get("cache_key")
    steps, evals, samples = _read_metrics(p / "metrics.jsonl", problems)
    if config is None:
        return RunCheck(p, None, problems)
    run = Run(path=p, config=config, status=status, env=env, steps=steps, evals=evals,
              samples=samples, final=final, error=error if isinstance(error, str) else None,
              cache_key=key if isinstance(key, str) else None)
    return RunCheck(p, run, problems)


def _read_config(p: Path, problems: list[str]) -> RunConfig | None:
    f = p / "config.json"
    if not f.exists():
        problems.append("config.json is missing: what the run trained is unknown")
        return None
    d = _read_part(f, problems)
    if d is None:
        if not problems:
            problems.append("config.json is damaged")
        return None
    try:
        return RunConfig.from_dict(d)
    except Exception as e:  # noqa: BLE001 - any shape the file may have: name it, go on
        problems.append("config.json does not describe a run this ftlab can read "
                        f"({type(e).__name__}: {str(e)[:120]})")
        return None


def _read_part(path: Path, problems: list[str]) -> dict | None:
    """A JSON object from a run file; None if absent; damage is added to ``problems``."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        problems.append(f"{path.name} cannot be read ({e.strerror or type(e).__name__})")
        return None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        where = f" at line {e.lineno}, column {e.colno}" if isinstance(
            e, json.JSONDecodeError) else ""
        empty = " (empty: the write was cut off)" if path.stat().st_size == 0 else ""
        problems.append(f"{path.name} is not valid JSON{where}{empty}")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{path.name} holds a {type(obj).__name__}, not an object")
        return None
    return obj


def _read_final(result: dict, problems: list[str]) -> dict:
    final = result.get("final", {})
    if not isinstance(final, dict):
        problems.append("result.json: 'final' is not an object; the final figures are lost")
        return {}
    final = dict(final)
    for key in _NUMBERS:
        v = final.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            problems.append(f"result.json: final.{key} = {str(v)[:40]!r} is not a number")
            final.pop(key)
    if "params" in final and not isinstance(final["params"], dict):
        problems.append("result.json: final.params is not an object")
        final.pop("params")
    return final


def _read_metrics(path: Path, problems: list[str]) -> tuple[list, list, list]:
    """Step, eval and samples records; every line that cannot be read is counted and named."""
    steps: list[dict] = []
    evals: list[dict] = []
    samples: list[dict] = []
    if not path.exists():
        return steps, evals, samples
    into = {"step": steps, "eval": evals, "samples": samples}
    bad, total = [], 0
    try:
        with path.open("rb") as f:
            while raw := f.readline(_MAX_METRICS_LINE):
                total += 1
                if len(raw) >= _MAX_METRICS_LINE and not raw.endswith(b"\n"):
                    while (rest := f.readline(_MAX_METRICS_LINE)) and not rest.endswith(b"\n"):
                        pass  # skip the rest of an absurd line without holding it
                    bad.append(total)
                    continue
                if not raw.strip():
                    continue
                rec = _record(raw)
                if rec is None:
                    bad.append(total)
                elif rec["kind"] in into:
                    into[rec["kind"]].append(rec)
    except OSError as e:
        problems.append(f"metrics.jsonl cannot be read ({e.strerror or type(e).__name__}); "
                        "the curves are lost")
        return steps, evals, samples
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        problems.append(f"metrics.jsonl: {len(bad)} of {total} lines damaged (line"
                        f"{'s' if len(bad) > 1 else ''} {shown}), dropped; the other "
                        f"{total - len(bad)} kept")
    return steps, evals, samples


def _record(raw: bytes) -> dict | None:
    """One metrics line as an event record, or None when it is not one (cut, garbled)."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or rec.get("kind") not in _EVENTS:
        return None
    fields = {f.name: f for f in dataclasses.fields(_EVENTS[rec["kind"]])}
    required = {n for n, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING}
    keys = set(rec) - {"kind"}
    if not required <= keys <= set(fields):
        return None
    step = rec["step"]
    if isinstance(step, bool) or not isinstance(step, int):
        return None
    for name in ("loss", "val_loss"):
        if name in rec and (isinstance(rec[name], bool) or not isinstance(rec[name],
                                                                           (int, float))):
            return None
    if not isinstance(rec.get("metrics", {}), dict) or not isinstance(
            rec.get("samples", []), list):
        return None
    return rec


def load_run(path: str | Path) -> Run:
    """Read a run folder; a run left 'running' by a dead process is 'interrupted'.

    A folder whose config cannot be read raises ``RunFolderError`` naming what is damaged;
    lesser damage (a cut metrics line, a damaged result.json) is named in a
    ``RunFolderWarning`` and the rest of the run is returned.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise FtlabError(f"load_run needs a run folder's path, not {path!r}.")
    p = Path(path)
    if not p.is_dir() or not any((p / f).exists() for f in RUN_FILES):
        raise FtlabError(f"{p} is not a run folder (no config.json). List runs with "
                         "ftlab.runs.list_runs() or `ftlab runs`.")
    check = check_run(p)
    if check.run is None:
        raise RunFolderError(p, check.problems)
    if check.problems:
        warnings.warn(f"Run folder {p.name} is damaged: " + "; ".join(check.problems),
                      RunFolderWarning, stacklevel=2)
    return check.run


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def scan_runs(runs_dir: str | Path | None = None) -> list[RunCheck]:
    """Every run folder under the runs directory, oldest first, damaged ones included."""
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    try:
        entries = sorted(root.iterdir())
    except OSError as e:
        raise EnvPathError(_runs_variable(runs_dir), root,
                           f"cannot be listed ({e.strerror or type(e).__name__})",
                           "Check its permissions.") from None
    return [check_run(p) for p in entries
            if not p.name.startswith(".") and p.is_dir()
            and any((p / f).exists() for f in RUN_FILES)]


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """Every readable run under the runs directory, oldest first.

    Each damaged folder is named in a ``RunFolderWarning`` (``scan_runs`` returns them
    with their problems, as ``ftlab runs`` shows them).
    """
    runs = []
    for check in scan_runs(runs_dir):
        if check.problems:
            kept = "listed with what is readable" if check.run else "left out"
            warnings.warn(f"Run folder {check.name} is damaged ({kept}): "
                          + "; ".join(check.problems), RunFolderWarning, stacklevel=2)
        if check.run is not None:
            runs.append(check.run)
    return runs


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """ftlab's version and a digest of its source and data files: a cache never outlives
    the code that measured it."""
    from .version import __version__

    root = Path(__file__).parent
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file() and (f.suffix == ".py" or "files" in f.parts):
            digest.update(f.relative_to(root).as_posix().encode())
            digest.update(f.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def cache_key(config: RunConfig, evaluators: dict | None = None) -> str:
    """What makes two runs the same: the resolved config, the evaluators, ftlab's version.

    ``config`` must be resolved (presets filled), so a panel's config, a notebook's and a
    run folder's agree. An evaluator is named by its ``key`` attribute if it has one (the
    suite and items it scores), else by its qualified name.
    """
    names = {name: getattr(fn, "key", None) or
             f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
             for name, fn in (evaluators or {}).items()}
    return digest({"config": config.to_dict(), "evaluators": names, "ftlab": code_version()})


def find_run(config: RunConfig, runs_dir: str | Path | None = None,
             evaluators: dict | None = None,
             status: tuple[str, ...] = ("completed", "early_stopped")) -> Run | None:
    """The newest finished run of this config and evaluator set (resolved first), or None."""
    key = cache_key(config.resolved(), evaluators)
    root = runs_root(runs_dir)
    if not root.is_dir():
        return None
    for p in sorted(root.iterdir(), reverse=True):
        result = _read_json(p / "result.json")
        if result and result.get("cache_key") == key and result.get("status") in status:
            try:
                return load_run(p)
            except FtlabError:
                continue  # a damaged folder is no cache: train again
    return None


def compare(runs: list[Run]) -> list[dict]:
    """One summary row per run: the table a compare view or a notebook shows."""
    return [r.summary() for r in runs]


def load_trained(path: str | Path):
    """The trained model of a run saved with ``save_weights=True``: (model, tokenizer)."""
    from .models import choose_placement, load_model

    run = load_run(path)
    weights = run.path / "weights"
    if not weights.is_dir():
        raise FtlabError(f"Run {run.name} saved no weights. Train with save_weights=True "
                         "to evaluate it later.")
    cfg = run.config
    placement = choose_placement(cfg.device, cfg.dtype)
    if cfg.method.trains_base:  # the whole model was saved, not an adapter
        return load_model(str(weights), device=cfg.device, dtype=cfg.dtype)
    from peft import PeftModel

    model, tok = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                            quantization=cfg.method.quantization(placement))
    return PeftModel.from_pretrained(model, str(weights)), tok
