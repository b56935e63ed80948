"""One run on several processes: the one place in ftlab that knows the rank.

ftlab builds no distribution of its own. Under a launcher (``torchrun``, ``accelerate
launch``) every process runs the same ``ftlab train``; transformers' ``Trainer`` reads
``LOCAL_RANK`` / ``WORLD_SIZE``, starts the process group (gloo on CPUs, NCCL on GPUs,
through accelerate) and wraps the model in DistributedDataParallel. What ftlab adds,
here and in the few lines of the lifecycle that call it (``docs/distributed.md``):

- ``train.batch_size`` stays the GLOBAL batch: each process takes ``batch_size /
  world_size`` rows a step (``per_device``), so one config is one optimisation on 1 or N
  processes. A batch that does not split evenly is refused (``check``).
- One run folder, written by rank 0 (``run_writer``); every other rank writes nothing and
  prints nothing but its own failure. The run cache is looked up on rank 0 and its answer
  sent to every rank (``on_main``), so the ranks never diverge.
- The Stop flag counts when any rank has it (``any_rank``), so every rank stops at the
  same step.
- GRPO (``rl``) runs on one process only (``check``).
- Ctrl-C (SIGINT, which torchrun forwards to every process) stops rank 0, which records
  the folder ``interrupted`` with every metric; the other ranks note the signal and go on
  until rank 0 leaves (``sigint_on_main``), so rank 0 is never left waiting for a rank that
  quit mid-step. When any process exits with an error, torchrun ends the others (SIGTERM,
  then SIGKILL after 30 s) and prints each failure: no run hangs.

With one process (no launcher), every function here is the identity: nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = ["any_rank", "check", "is_main", "launch_command", "local_rank", "on_main",
           "per_device", "rank", "run_writer", "sigint_on_main", "world_size"]

T = TypeVar("T")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world_size() -> int:
    """How many processes run this run (``WORLD_SIZE``, set by the launcher; else 1)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    """This process's rank among them (``RANK``; 0 without a launcher)."""
    return _env_int("RANK", 0) if world_size() > 1 else 0


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``): its GPU, where there are GPUs."""
    return _env_int("LOCAL_RANK", 0) if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process writes the run folder and prints (rank 0, or no launcher)."""
    return rank() == 0


def per_device(batch_size: int) -> int:
    """Rows per process per step: the config's global batch split over the processes."""
    return batch_size // world_size()


def check(cfg) -> None:
    """Refuse, on every rank alike and before anything loads, what several processes cannot
    run here: a global batch that does not split evenly, and GRPO."""
    n = world_size()
    if n == 1:
        return
    if cfg.rl is not None:
        raise ConfigError(
            "rl", "on", f"no rl section when launched on {n} processes: GRPO runs on one "
            "process here (TRL's GRPOTrainer generates on every rank; ftlab has not "
            "measured it under a launcher)",
            "Run it without torchrun: ftlab train --config FILE.")
    b = cfg.train.batch_size
    if b % n:
        near = " or ".join(str(m) for m in sorted({b - b % n, b - b % n + n} - {0}))
        raise ConfigError(
            "train.batch_size", b, f"a multiple of the {n} processes: it is the global "
            f"batch, split evenly over them ({b} rows cannot be)",
            f"Set train.batch_size to {near}, or launch a number of processes that "
            f"divides {b} ({_divisors(b)}).")


def _divisors(b: int) -> str:
    ds = [str(m) for m in range(1, b + 1) if b % m == 0]
    return ds[0] if len(ds) == 1 else f"{', '.join(ds[:-1])} or {ds[-1]}"


def _start(cfg) -> None:
    """Start the process group as the Trainer will (accelerate's ``PartialState``, gloo
    for a run on CPUs), so rank 0 can send its answers before the Trainer exists. The
    Trainer finds the group started and uses it."""
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        from ..models import choose_placement

        PartialState(cpu=choose_placement(cfg.device, cfg.dtype).device == "cpu")


def on_main(fn: Callable[[], T], cfg) -> T:
    """``fn()`` on rank 0, its answer (picklable) on every rank; ``fn()`` with one process.
    ``cfg`` (the run's resolved config) says which process group to start."""
    if world_size() == 1:
        return fn()
    _start(cfg)
    from accelerate.utils import broadcast_object_list

    box = [fn() if is_main() else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is set on any rank (every rank must ask at the same point)."""
    if world_size() == 1:
        return flag
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


_SIGINT = threading.Event()  # a rank other than 0 was sent SIGINT during its run


@contextlib.contextmanager
def sigint_on_main() -> Iterator[None]:
    """While a run goes: on ranks other than 0, SIGINT is noted (``interrupted``), not
    raised. Rank 0 stops on it and leaves; the others then end at their next exchange with
    it (or torchrun ends them). One process: nothing changes."""
    main_thread = threading.current_thread() is threading.main_thread()
    if world_size() == 1 or is_main() or not main_thread:
        yield
        return
    old = signal.signal(signal.SIGINT, lambda signum, frame: _SIGINT.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def interrupted() -> bool:
    """Whether this rank (not 0) was sent SIGINT: its run's ending is an interrupt."""
    return _SIGINT.is_set()


class QuietWriter:
    """What a rank other than 0 holds instead of a ``RunWriter``: rank 0's folder path,
    and nothing written."""

    def __init__(self, path: Path) -> None:
        self.path, self.env = path, {}

    def log(self, record: dict) -> None:
        pass

    def set_status(self, status: str, **extra: Any) -> None:
        pass

    def finish(self, status: str, result: dict, error: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def run_writer(cfg, device: str, runs_dir):
    """The run folder's writer: a ``RunWriter`` on rank 0 (its ``env.json`` records the
    world size), a ``QuietWriter`` with the same path on the other ranks."""
    from ..runs import RunWriter, write_json

    if world_size() == 1:
        return RunWriter(cfg, device, runs_dir)
    writer = RunWriter(cfg, device, runs_dir) if is_main() else None
    if writer is not None:
        writer.env = {**writer.env, "world_size": world_size()}
        write_json(writer.path / "env.json", writer.env)
    path = on_main(lambda: writer.path, cfg)
    return writer if writer is not None else QuietWriter(path)


def launch_command(cfg, nproc: int, path: str | os.PathLike, *, json: bool = False,
                   echo: bool = True) -> str:
    """Write ``cfg`` to ``path`` (``RunConfig.save``) and return the ``torchrun`` command
    line that trains it on ``nproc`` processes of this machine (printed when ``echo``).
    ``nproc`` must divide the config's global batch (``train.batch_size``)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError("nproc", nproc, "a whole number of processes, at least 1",
                          "e.g. launch_command(cfg, 2, 'run.yaml').")
    b = cfg.resolved().train.batch_size
    if b % nproc:
        raise ConfigError("nproc", nproc, f"a divisor of train.batch_size = {b} (the global "
                          "batch is split evenly over the processes)",
                          f"Choose {_divisors(b)}, or change train.batch_size.")
    written = cfg.save(path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "ftlab", "train", "--config", str(written)]
    if json:
        cmd.append("--json")
    line = shlex.join(cmd)
    if echo:
        print(line)
    return line
