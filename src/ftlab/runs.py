"""Run folders: every run leaves one that a later session can reload and compare.

A folder holds ``config.json``, ``env.json`` (versions, device, seed, git revision),
``metrics.jsonl`` (one event a line, appended as the run goes), ``status.json`` and, at the
end, ``result.json`` (and ``weights/`` if asked). Whole-file writes are atomic (write to a
temporary file, then rename). A run whose process died leaves ``status: running`` with a
pid that is gone; ``load_run`` reports it as ``interrupted``.
"""

from __future__ import annotations

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
        write_json(path / "env.json", environment(device, config.seed))
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
    """A run folder read back: config, status, per-step and per-eval records, final figures."""

    path: Path
    config: RunConfig
    status: str
    env: dict
    steps: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    result: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def final(self) -> dict:
        return self.result.get("final", {})

    def summary(self) -> dict:
        f = self.final
        return {"run": self.name, "method": self.config.method.name, "status": self.status,
                "hash": self.config.hash(), "steps": f.get("steps"),
                "train_loss": f.get("train_loss"), "val_loss": f.get("val_loss"),
                "best_val_loss": f.get("best_val_loss"),
                "trainable_params": f.get("params", {}).get("trainable"),
                "peak_memory_bytes": f.get("peak_memory_bytes"), "wall_s": f.get("wall_s")}


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
    run = Run(path=p, config=config, status=status, env=_read_json(p / "env.json") or {},
              result=_read_json(p / "result.json") or {}, error=status_rec.get("error"))
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


def find_run(config: RunConfig, runs_dir: str | Path | None = None,
             status: str = "completed") -> Run | None:
    """The newest finished run with exactly this config (its hash), for reuse."""
    h = config.hash()
    matches = [r for r in list_runs(runs_dir) if r.config.hash() == h and r.status == status]
    return matches[-1] if matches else None


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
