"""How many threads PyTorch uses, and how they wait: set at ``import ftlab``, kept
fitted to the CPUs other processes leave free while ftlab computes.

Two things go wrong on shared CPUs (a classroom server, two notebooks, a panel run beside
an evaluation cell):

- **Too many threads.** PyTorch starts one thread per CPU it can see. In a container the
  CPU *quota* (cgroup ``cpu.max``) is often far below that, and every thread beyond the
  quota waits for a time slice while holding the others up at each barrier.
  ``usable_cpus`` counts the CPUs this process may really use: its affinity mask, capped
  by the cgroup quota.
- **Spinning.** GNU OpenMP (what PyTorch's Linux wheels use) keeps a thread that waits at
  a barrier spinning for up to 300,000 iterations before it sleeps. Alone that saves
  wake-ups; beside another run it burns the time slice the other run's thread needs: two
  LoRA runs on two cores went 7.8x slower each instead of 2x. No wait policy fixes both
  cases here (measured on 2 cores): never spinning (``OMP_WAIT_POLICY=PASSIVE``) or a
  short spin (``GOMP_SPINCOUNT`` 1,000) kept a pair at 1.7x but cost a run alone 25-35%;
  spins of 10,000 and more kept the lone speed and let the pair collapse (4-40x).

So ftlab does two things. ``configure`` (at import) caps the thread count at the usable
CPUs and sets a moderate spin (``SPIN_COUNT``: no loss alone, and a softer transient when
a neighbour appears). ``CpuShare`` (``share_cpus``, called before every training and decode
step) watches how much CPU other processes take and drops this process to the threads
left free (one, beside one busy neighbour on two cores): a single thread never waits at a
barrier, so never spins. Alone again, it goes back up. ``benchmarks/contention.py``
measures a run alone and two runs together.

OpenMP reads its environment once, when PyTorch loads it, so ``configure`` must run before
``import torch``: ``ftlab/__init__.py`` calls it first. If torch was imported earlier, the
spin cannot change any more; the thread count still can (``torch.set_num_threads``). A
setting of the user's own always wins: ``OMP_NUM_THREADS`` (fixes the count: no
adapting), ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in the environment, a thread count
set in torch, or ``FTLAB_THREADS`` (``off``: leave everything as it is; a number: use that
many threads, fixed). A value neither understands (``OMP_NUM_THREADS=0``, ``FTLAB_THREADS=
abc``) is not a setting: OpenMP ignores it, and ftlab says so (``ThreadsWarning``, naming the
variable, its value and what is allowed) and chooses as if it were unset.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import MutableMapping
from pathlib import Path

ENV = "FTLAB_THREADS"
SPIN_COUNT = 30_000  # GOMP_SPINCOUNT: spin iterations before a waiting thread sleeps
_USER_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

#: what ``configure`` decided, and why (read by benchmarks and run environments)
CHOICE: dict = {}


class ThreadsWarning(UserWarning):
    """A thread setting in the environment that is not one: ignored, and said so."""


def _omp_count(value: str) -> bool:
    """Whether ``value`` is a thread count OpenMP takes: a whole number of at least 1, or
    a comma list of them (one per nesting level, e.g. ``"4,1"``)."""
    parts = [p.strip() for p in value.split(",")]
    return all(p.isdigit() and int(p) >= 1 for p in parts)


def _ftlab_setting(env: MutableMapping[str, str], usable: int) -> str:
    """``FTLAB_THREADS`` as ``"off"``, ``"auto"`` or a thread count; any other value is
    warned about (``ThreadsWarning``) and read as ``"auto"``."""
    raw = env.get(ENV, "")
    setting = raw.strip().lower() or "auto"
    if setting in ("off", "0", "no", "false"):
        return "off"
    if setting == "auto" or setting.isdigit():
        return setting
    warnings.warn(f"{ENV} = {raw!r} is not a setting ftlab knows: expected 'auto', 'off' (or "
                  "0), or a whole number of threads of at least 1. ftlab reads it as 'auto' "
                  f"(up to {usable} thread{'s' if usable != 1 else ''}, fewer beside other "
                  "busy processes).", ThreadsWarning, stacklevel=3)
    return "auto"


def _read_quota(folder: Path) -> float | None:
    """CPUs' worth of time one cgroup folder allows, or None (no quota, no such file).

    cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``.
    cgroup v1: ``cpu.cfs_quota_us`` (``-1``: none) over ``cpu.cfs_period_us``.
    """
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """The folders holding this process's cpu controller: its own cgroup and every parent
    (a quota set on a parent binds too), v2 and v1 layouts."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    leaves = []
    for line in lines:  # "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1)
        _, controllers, path = line.split(":", 2)
        rel = path.strip("/")
        if controllers == "":
            leaves.append(root / rel)
        elif "cpu" in controllers.split(","):
            leaves += [root / controllers / rel, root / "cpu" / rel, root / "cpu,cpuacct" / rel]
    leaves += [root, root / "cpu", root / "cpu,cpuacct"]
    folders: list[Path] = []
    for folder in leaves:
        while True:  # up to the mount root, no further
            if folder not in folders:
                folders.append(folder)
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return folders


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup",
                     proc_cgroup: str | os.PathLike = "/proc/self/cgroup") -> float | None:
    """CPUs' worth of time the tightest cgroup quota on this process allows (``None``: no
    quota; e.g. 1.5 for ``cpu.max`` = ``"150000 100000"``)."""
    quotas = [q for f in _cgroup_folders(Path(root), Path(proc_cgroup))
              if (q := _read_quota(f)) is not None]
    return min(quotas) if quotas else None


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on (the host's count where affinity is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def usable_cpus(affinity: int | None = None, quota: float | None | str = "read") -> int:
    """CPUs this process may really use: its affinity, capped by the cgroup quota (rounded
    up: a quota of 1.5 CPUs still runs two threads part of the time), at least 1."""
    n = affinity_cpus() if affinity is None else affinity
    limit = cgroup_cpu_limit() if quota == "read" else quota
    if limit is not None and limit > 0:
        n = min(n, math.ceil(limit - 1e-9))
    return max(1, n)


def configure(environ: MutableMapping[str, str] | None = None, *,
              cpus: tuple[int, int] | None = None, torch_loaded: bool | None = None) -> dict:
    """Choose PyTorch's thread count and OpenMP's wait policy for this process (see the
    module docstring); returns the choice and records it in ``CHOICE``. Idempotent.

    ``environ``, ``cpus`` (usable, affinity) and ``torch_loaded`` default to this process's
    own; tests pass their own.
    """
    env = os.environ if environ is None else environ
    usable, affinity = cpus if cpus is not None else (usable_cpus(), affinity_cpus())
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    choice: dict = {"usable_cpus": usable, "affinity_cpus": affinity, "set": {}}
    setting = _ftlab_setting(env, usable)
    if setting == "off":
        choice["policy"] = "off"
    else:
        explicit = setting.isdigit()
        threads = int(setting) if explicit else usable
        # the user's OMP_NUM_THREADS fixes the count; empty is unset, and a value OpenMP
        # cannot read ("0", "abc") it ignores: so does ftlab, saying so
        omp = env.get("OMP_NUM_THREADS", "").strip()
        user_omp = bool(omp) and _omp_count(omp)
        if omp and not user_omp:
            warnings.warn(f"OMP_NUM_THREADS = {env['OMP_NUM_THREADS']!r} is not a thread "
                          "count: expected a whole number of at least 1 (or a comma list "
                          "such as '4,1'). OpenMP ignores it; ftlab chooses as if it were "
                          f"unset ({threads} thread{'s' if threads != 1 else ''}). Set it to "
                          "a count, or unset it.", ThreadsWarning, stacklevel=2)
        choice.update(policy=f"{threads} threads" if explicit else "auto", threads=threads,
                      adapt=not explicit and not user_omp)
        if not loaded:
            # libgomp's own default is one thread per CPU of the affinity mask
            if not user_omp and (explicit or threads != affinity or omp):
                env["OMP_NUM_THREADS"] = choice["set"]["OMP_NUM_THREADS"] = str(threads)
            if not any(v in env for v in _USER_WAIT_VARS):
                env["GOMP_SPINCOUNT"] = choice["set"]["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
        else:
            import torch

            # torch's default is one thread per CPU of the affinity mask; any other count
            # was chosen by the user and stays
            default = not user_omp and torch.get_num_threads() == affinity
            if explicit or (default and threads != affinity):
                torch.set_num_threads(threads)
                choice["set"]["torch.set_num_threads"] = threads
            choice["note"] = "torch was imported before ftlab: OpenMP's wait policy is as it was"
    CHOICE.clear()
    CHOICE.update(choice)
    return choice


# --- sharing the CPUs with other processes, while running ------------------------------

def _proc_stat_busy(cpus: set[int] | None = None, path: str = "/proc/stat") -> float:
    """CPU seconds spent busy so far on ``cpus`` (all when None), from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in Path(path).read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
        busy += user + nice + system + irq + softirq
    return busy / tick


def _cgroup_usage(folder: Path, root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU seconds a cgroup's processes used so far: v2 ``cpu.stat`` (``usage_usec``), v1
    ``cpuacct.usage`` (in the same folder when cpu and cpuacct are mounted together)."""
    try:
        for line in (folder / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return int(line.split()[1]) / 1e6
    except (OSError, ValueError):
        pass
    candidates = [folder / "cpuacct.usage"]
    if root / "cpu" in [folder, *folder.parents]:
        candidates.append(root / "cpuacct" / folder.relative_to(root / "cpu") / "cpuacct.usage")
    for f in candidates:
        try:
            return int(f.read_text()) / 1e9
        except (OSError, ValueError):
            continue
    return None


class CpuShare:
    """Fits PyTorch's thread count to the CPUs other processes leave free, while running.

    No OpenMP wait policy is right both alone and beside a neighbour (measured: a spin
    short enough for two runs to share two cores politely costs a run alone 25-35%, and
    one long enough to keep the lone speed makes the pair collapse). A thread that never
    waits at a barrier never spins, though: when another process keeps one of two cores
    busy, one thread is the right count. ``poll()`` measures, at most once per
    ``interval`` seconds, how many CPUs' worth of time other processes took on this
    process's CPUs (in a cgroup with a quota: inside the cgroup), and sets
    ``torch.set_num_threads`` to the usable CPUs minus those (at least 1); back up when
    they leave. Call it from the thread that computes: OpenMP's thread count belongs to
    the calling thread. ftlab calls it before every training step and decode step.

    A thread count the user set (``OMP_NUM_THREADS``, ``FTLAB_THREADS``, or
    ``torch.set_num_threads`` to a value ftlab did not choose) is left alone.
    """

    def __init__(self, usable: int | None = None, interval: float = 1.0,
                 busy=None, own=None, clock=None, enabled: bool = True):
        import time

        self.usable = usable_cpus() if usable is None else usable
        self.interval, self.enabled = interval, enabled and self.usable > 1
        self.busy = busy or self._default_busy()
        self.own = own or time.process_time
        self.clock = clock or time.monotonic
        self.last: tuple[float, float, float] | None = None
        self.others = 0.0  # CPUs' worth of time others used in the last window
        self.target = self.usable
        self._set_by_us: dict[int, int] = {}  # thread id -> count ftlab set there
        if self.enabled:
            self.measure()  # the first window starts now

    def _default_busy(self):
        """Where to read the CPU time all processes sharing our CPUs used."""
        root = Path("/sys/fs/cgroup")
        folders = _cgroup_folders(root, Path("/proc/self/cgroup"))
        quotas = [(q, f) for f in folders if (q := _read_quota(f)) is not None]
        if quotas and math.ceil(min(quotas)[0]) < affinity_cpus():
            folder = min(quotas)[1]
            if _cgroup_usage(folder, root) is not None:
                return lambda: _cgroup_usage(folder, root)
        try:
            cpus = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            cpus = None
        try:
            _proc_stat_busy(cpus)
        except (OSError, ValueError):
            return lambda: None
        return lambda: _proc_stat_busy(cpus)

    def measure(self) -> int | None:
        """A new target thread count if a window of ``interval`` seconds has passed."""
        now = self.clock()
        if self.last is not None and now - self.last[0] < self.interval:
            return None
        busy, own = self.busy(), self.own()
        if busy is None:
            return None
        last, self.last = self.last, (now, busy, own)
        if last is None:
            return None
        others = max(0.0, (busy - last[1]) - (own - last[2])) / (now - last[0])
        self.others = others
        # a CPU counts as taken when others used more than 0.6 of one
        self.target = max(1, self.usable - int(others + 0.4))
        return self.target

    def poll(self) -> int | None:
        """Measure if due, and apply the target to this thread; the count now, or None."""
        if not self.enabled:
            return None
        import threading

        import torch

        self.measure()
        tid = threading.get_ident()
        now = torch.get_num_threads()
        mine = self._set_by_us.get(tid, self.usable)
        if now != mine:  # the user chose a count in this thread: theirs
            return now
        if now != self.target:
            torch.set_num_threads(self.target)
            self._set_by_us[tid] = self.target
        return self.target


_SHARE: CpuShare | None = None


def share_cpus() -> int | None:
    """``CpuShare.poll`` on this process's shared instance (cheap between windows)."""
    global _SHARE
    if _SHARE is None:
        _SHARE = CpuShare(usable=CHOICE.get("threads"), enabled=CHOICE.get("adapt", False))
    return _SHARE.poll()


def start_sharing() -> None:
    """Start the first measuring window now (``import ftlab`` does), so that the first
    step of a run already knows about a neighbour."""
    global _SHARE
    _SHARE = CpuShare(usable=CHOICE.get("threads"), enabled=CHOICE.get("adapt", False))

