"""Run folders: every run leaves one that a later session can reload and compare.

A folder holds ``config.json``, ``env.json`` (versions, device, seed, git revision),
``metrics.jsonl`` (one event a line, appended as the run goes), ``status.json`` and, at the
end, ``result.json`` (and ``weights/`` if asked). Whole-file writes are atomic (write to a
temporary file, then rename). A run whose process died leaves ``status: running`` with a
pid that is gone; ``load_run`` reports it as ``interrupted``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import FtlabError

PACKAGES = ("ftlab", "torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate")


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """Where run folders go: the argument, else FTLAB_RUNS, else ./runs."""
    return Path(runs_dir or os.environ.get("FTLAB_RUNS") or "runs")


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
        root = runs_root(runs_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{config.method.name}-{config.hash()}"
        path, i = root / base, 1
        while path.exists():  # two runs of one config in the same second
            path, i = root / f"{base}-{i}", i + 1
        path.mkdir(parents=True)
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def load_run(path: str | Path) -> Run:
    """Read a run folder; a run left 'running' by a dead process is 'interrupted'."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FtlabError(f"{p} is not a run folder (no config.json). List runs with "
                         "ftlab.runs.list_runs() or `ftlab runs`.")
    config = RunConfig.from_dict(json.loads((p / "config.json").read_text()))
    status_rec = _read_json(p / "status.json") or {"status": "interrupted"}
    status = status_rec.get("status", "interrupted")
    if status == "running" and not _pid_alive(int(status_rec.get("pid", -1))):
        status = "interrupted"
    result = _read_json(p / "result.json") or {}
    run = Run(path=p, config=config, status=status, env=_read_json(p / "env.json") or {},
              final=result.get("final", {}), error=status_rec.get("error"),
              cache_key=result.get("cache_key"))
    metrics = p / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            {"step": run.steps, "eval": run.evals, "samples": run.samples}.get(
                rec.get("kind"), []).append(rec)
    return run


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """Every run folder under the runs directory, oldest first."""
    root = runs_root(runs_dir)
    if not root.is_dir():
        return []
    return [load_run(p) for p in sorted(root.iterdir()) if (p / "config.json").is_file()]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """ftlab's version and a digest of its source and data files: a cache never outlives
    the code that measured it."""
    from . import __version__

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
    blob = json.dumps({"config": config.to_dict(), "evaluators": names,
                       "ftlab": code_version()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
            return load_run(p)
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
    if cfg.method.name == "full":
        return load_model(str(weights), device=cfg.device, dtype=cfg.dtype)
    from peft import PeftModel

    model, tok = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                            quantization=cfg.method.quantization(placement))
    return PeftModel.from_pretrained(model, str(weights)), tok
