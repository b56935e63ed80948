"""Run folders: every run leaves one that a later session can reload and compare.

A folder holds ``config.json``, ``env.json`` (versions, device, seed, git revision),
``metrics.jsonl`` (one event a line, appended as the run goes), ``status.json`` and, at the
end, ``weights/`` (if asked), ``result.json`` and the final ``status.json``, in that order:
a folder whose status says it finished has everything else on disk. Whole-file writes are
atomic (write to a temporary file, then rename). A run whose process died leaves
``status: running`` for a process that is gone; ``load_run`` reports it as ``interrupted``.

The run cache (``find_run``) reuses a folder only when it is complete and consistent
(``reuse_problems``); a damaged one is named in a warning, kept, and the run trained again.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import RunConfig
from .digest import digest
from .environment import TRAINING_PACKAGES
from .errors import (
    ConfigError,
    EnvPathError,
    FtlabError,
    RunFolderError,
    RunFolderWarning,
    writable_folder,
)
from .events import EvalLogged, RunEnded, SamplesLogged, StepLogged

PACKAGES = ("ftlab", *TRAINING_PACKAGES)  # what env.json records (ftlab.environment: the list)


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """Where run folders go: the argument, else FTLAB_RUNS, else ./runs (a folder).

    The one door for the runs folder: a value that is not a path, a name the file system
    refuses (too long) or a file is said here, in one line, before anything is written.
    """
    if runs_dir is not None and not isinstance(runs_dir, (str, os.PathLike)):
        raise ConfigError("runs_dir", runs_dir, "a folder path (str or pathlib.Path), or None",
                          "None puts run folders under FTLAB_RUNS, else ./runs.")
    root = Path(runs_dir or os.environ.get("FTLAB_RUNS") or "runs").expanduser()
    try:
        longest = max((len(os.fsencode(part)) for part in root.parts), default=0)
        if longest > _name_max(root):  # said whether or not the folders above exist
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
        root.stat()
    except (FileNotFoundError, NotADirectoryError):
        return root  # created when the first run writes (or refused then, by writable_folder)
    except (OSError, ValueError) as e:  # too long a name, a NUL byte, a loop of links
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:
            why += f": at most {_name_max(root)} characters a name"
        raise EnvPathError(_runs_variable(runs_dir), shown_path(root),
                           f"cannot be used ({why})",
                           "Point it at a folder with a shorter path.") from None
    if not root.is_dir():
        raise EnvPathError(_runs_variable(runs_dir), root, "is a file, not a folder",
                           "Point it at a folder for run folders (it is created if missing).")
    return root


def shown_path(path: str | Path, limit: int = 80) -> str:
    """A path as a message shows it: its start and its length when it is absurdly long."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:60]}... ({len(text)} characters)"


def _name_max(path: Path) -> int:
    for p in (path, *path.parents):
        try:
            return os.pathconf(p, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            continue
    return 255


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
                                               "started": _process_started(os.getpid()),
                                               "time": time.time(), **extra})

    def log(self, record: dict) -> None:
        self._metrics.write(json.dumps(record, default=str) + "\n")
        self._metrics.flush()  # a crash keeps every line written so far

    def finish(self, status: str, result: dict, error: str | None = None) -> None:
        """``result.json``, then the status: a finished status is the folder's last word
        (the engine logs the end record and saves the weights before calling this)."""
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


def _process_started(pid: int) -> float | None:
    """When the OS started process ``pid`` (seconds since the epoch), or None if unknown."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - gone, not ours to see, or psutil missing: unknown
        return None


def _runner_alive(status: Mapping[str, Any]) -> bool:
    """Whether the process that wrote a ``running`` status.json still runs that run.

    A pid alone proves nothing: pids are reused (a container's pid 1 always lives, and
    after a reboot any number may belong to someone else). So the writer records its
    process start time next to the pid (``started``), and the runner counts as alive only
    if a process with that pid exists *and* started at that time: a pid reused by another
    process has another start time. A status.json without the stamp (hand-written, or from
    an older ftlab) is trusted only for a live Python process that started before the
    status was written. No heartbeat is needed, so a run in a long evaluation (minutes
    between writes) still lists as running.
    """
    pid = status.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # no pid, or one that would signal a whole group (0, -1)
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # it exists, owned by someone else
    except (OSError, OverflowError, ValueError):
        return False
    started, stamp = _process_started(pid), status.get("started")
    if _is_number(stamp) and started is not None:
        return abs(started - stamp) < 1.0
    if started is not None and _is_number(status.get("time")) and started > status["time"] + 1:
        return False  # the process is younger than the status it would have written
    try:
        import psutil

        argv = psutil.Process(pid).cmdline()
    except Exception:  # noqa: BLE001 - not ours to see: keep the benefit of the doubt
        return True
    return any("python" in Path(a).name.lower() for a in argv[:2])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


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
    ended: dict | None = None  # the run's last end record in metrics.jsonl, if any

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
    if status == "running" and not _runner_alive(status_rec):
        status = "interrupted"
    if result is None and status in _FINISHED and (p / "status.json").is_file() and not (
            p / "result.json").exists():
        problems.append(f"result.json is missing although the run {status}: its final "
                        "figures are lost")
    final = _read_final(result or {}, problems)
    error = status_rec.get("error")
    key = (result or {}).get("cache_key")
    steps, evals, samples, ends = _read_metrics(p / "metrics.jsonl", problems)
    if status in _FINISHED and not problems_about(problems, "metrics.jsonl"):
        if not (p / "metrics.jsonl").exists():
            problems.append(f"metrics.jsonl is missing although the run {status}: its "
                            "curves are lost")
        elif not (steps or evals or samples or ends):
            problems.append(f"metrics.jsonl is empty although the run {status}: its "
                            "curves are lost")
    ended = ends[-1] if ends else None
    if config is None:
        return RunCheck(p, None, problems, ended)
    run = Run(path=p, config=config, status=status, env=env, steps=steps, evals=evals,
              samples=samples, final=final, error=error if isinstance(error, str) else None,
              cache_key=key if isinstance(key, str) else None)
    return RunCheck(p, run, problems, ended)


def problems_about(problems: list[str], name: str) -> bool:
    return any(p.startswith(name) for p in problems)


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


def _read_metrics(path: Path, problems: list[str]) -> tuple[list, list, list, list]:
    """Step, eval, samples and end records; every line that cannot be read is counted and
    named."""
    steps: list[dict] = []
    evals: list[dict] = []
    samples: list[dict] = []
    ends: list[dict] = []
    if not path.exists():
        return steps, evals, samples, ends
    into = {"step": steps, "eval": evals, "samples": samples, "end": ends}
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
        return steps, evals, samples, ends
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        problems.append(f"metrics.jsonl: {len(bad)} of {total} lines damaged (line"
                        f"{'s' if len(bad) > 1 else ''} {shown}), dropped; the other "
                        f"{total - len(bad)} kept")
    return steps, evals, samples, ends


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
    suite and items it scores), else by its qualified name. A run launched on several
    processes (``torchrun``) is another run: its batches are split and its sums reduced in
    another order, so its numbers agree with one process's only to rounding.
    """
    names = {name: getattr(fn, "key", None) or
             f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
             for name, fn in (evaluators or {}).items()}
    processes = _launched_processes()
    return digest({"config": config.to_dict(), "evaluators": names, "ftlab": code_version(),
                   **({"processes": processes} if processes > 1 else {})})


def _launched_processes() -> int:
    """``WORLD_SIZE`` as a launcher sets it (1 without one), read here rather than from
    ``ftlab.engine.distributed``, which itself reads run folders."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError:
        return 1


def find_run(config: RunConfig, runs_dir: str | Path | None = None,
             evaluators: dict | None = None,
             status: tuple[str, ...] = ("completed", "early_stopped")) -> Run | None:
    """The newest finished, intact run of this config and evaluator set (resolved first),
    or None.

    A folder of this key that fails ``reuse_problems`` (a cut metrics file, a damaged
    result, weights cut while saving, a status that never finished) is never served: it is
    named in one ``RunFolderWarning``, left as it is, and the search goes on (``train``
    then trains again).
    """
    key = cache_key(config.resolved(), evaluators)
    root = runs_root(runs_dir)
    if not root.is_dir():
        return None
    try:
        entries = sorted(root.iterdir(), reverse=True)
    except OSError:
        return None  # an unlistable folder is no cache; writing there says why
    for p in entries:
        result = _read_json(p / "result.json")
        if not (result and result.get("cache_key") == key and result.get("status") in status):
            continue  # another config, or a run that did not finish: not a cache entry
        check = check_run(p)
        problems = reuse_problems(check, key, evaluators, status)
        if not problems:
            return check.run
        warnings.warn(f"Run folder {p} is not reused, it is damaged: " + "; ".join(problems)
                      + ". Training again; the folder is kept.", RunFolderWarning,
                      stacklevel=2)
    return None


def reuse_problems(check: RunCheck, key: str, evaluators: Mapping | None = None,
                   status: tuple[str, ...] = ("completed", "early_stopped")) -> list[str]:
    """Why a run folder cannot stand in for training ``key`` again; empty when it can.

    Reused means trusted as if just trained, so every part must be there and agree: the
    folder reads without damage (``check_run``), its status finished, its config is the
    key's, metrics.jsonl ends with the run's end record and holds the evaluations
    result.json reports (a lab reads its figures from them), and the weights load where
    the config saved them.
    """
    problems = list(check.problems)
    run = check.run
    if run is None:
        return problems or ["config.json cannot be read"]
    if run.status not in status:
        why = " (its process is gone)" if run.status == "interrupted" else ""
        problems.append(f"the run never finished: status.json says {run.status!r}{why}")
    if cache_key(run.config, evaluators) != key:
        problems.append("config.json does not match the run's cache key (edited after "
                        "the run?)")
    ended = check.ended
    if not problems_about(problems, "metrics.jsonl"):
        if ended is None:
            problems.append("metrics.jsonl does not record the run's end (cut off or "
                            "emptied)")
        elif ended.get("status") != run.status and run.status in status:
            problems.append(f"metrics.jsonl records the end as {ended.get('status')!r}, "
                            f"status.json as {run.status!r}")
        problems += _evaluation_problems(run)
    if run.config.save_weights:
        problems += weights_problems(check.path / "weights", run.config)
    return problems


def _evaluation_problems(run: Run) -> list[str]:
    """The evaluations result.json reports (first and final) must be in metrics.jsonl."""
    f, full = run.final, [e for e in run.evals if e.get("full", True)]
    wants_first = f.get("first_val_loss") is not None or bool(f.get("first_metrics"))
    wants_final = f.get("final_val_loss") is not None or bool(f.get("final_metrics"))
    if (wants_first or wants_final) and not full:
        return ["metrics.jsonl holds none of the evaluations result.json reports"]
    out = []
    if wants_first and full[0].get("step") != 0:
        out.append("metrics.jsonl lacks the step-0 evaluation result.json reports")
    if wants_final and (
            full[-1].get("step") != f.get("steps")
            or _canonical(full[-1].get("metrics", {})) != _canonical(f.get("final_metrics", {}))
            or ("final_val_loss" in f and _canonical(run.evals[-1].get("val_loss"))
                != _canonical(f["final_val_loss"]))):
        out.append(f"metrics.jsonl lacks the final evaluation (step {f.get('steps')}) "
                   "result.json reports")
    return out


def _canonical(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)  # NaN == NaN, as the files hold them


def weights_problems(folder: str | Path, config: RunConfig) -> list[str]:
    """What keeps a run's ``weights/`` from loading, read from the files' headers only.

    An adapter method needs ``adapter_config.json``, a full fine-tune ``config.json`` and
    its tokenizer; every ``*.safetensors`` file must be as long as its header says (a save
    cut by a kill or a full disk is shorter). Empty when the folder would load.
    """
    w = Path(folder)
    if not w.is_dir():
        return ["weights/ is missing although the run was trained with save_weights=True"]
    needs = (("config.json", "tokenizer_config.json") if config.method.trains_base
             else ("adapter_config.json",))
    problems = []
    for name in needs:
        f = w / name
        if not f.is_file():
            problems.append(f"weights/{name} is missing")
        elif _read_json(f) is None:
            problems.append(f"weights/{name} is not a valid JSON object")
    tensors = sorted(w.glob("*.safetensors"))
    if not tensors and not any(w.glob("*.bin")):
        problems.append("weights/ holds no weights file (*.safetensors)")
    for t in tensors:
        why = _safetensors_problem(t)
        if why:
            problems.append(f"weights/{t.name} {why}")
    return problems


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot load (None: its length agrees with its header)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 0 or n > size - 8:
                return f"is cut ({size} bytes, shorter than its header)"
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "has a damaged header"
    if not isinstance(header, dict):
        return "has a damaged header"
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items()
                   if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        return "has a damaged header"
    if 8 + n + end != size:
        return f"is cut ({size} bytes, its header describes {8 + n + end})"
    return None


def compare(runs: list[Run]) -> list[dict]:
    """One summary row per run: the table a compare view or a notebook shows."""
    return [r.summary() for r in runs]


def load_trained(path: str | Path):
    """The trained model of a run saved with ``save_weights=True``: (model, tokenizer)."""
    from .models import choose_placement, load_model

    run = load_run(path)
    weights = run.path / "weights"
    if not weights.is_dir() and not run.config.save_weights:
        raise FtlabError(f"Run {run.name} saved no weights. Train with save_weights=True "
                         "to evaluate it later.")
    problems = weights_problems(weights, run.config)
    if problems:  # said before PEFT or safetensors meet the files and raise their own
        raise RunFolderError(run.path, problems)
    cfg = run.config
    placement = choose_placement(cfg.device, cfg.dtype)
    if cfg.method.trains_base:  # the whole model was saved, not an adapter
        return load_model(str(weights), device=cfg.device, dtype=cfg.dtype)
    from peft import PeftModel

    model, tok = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                            quantization=cfg.method.quantization(placement))
    return PeftModel.from_pretrained(model, str(weights)), tok
