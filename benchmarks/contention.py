"""Two runs on the same cores: does each slow down about 2x, or collapse?

Each run is a fresh process training LoRA (r=8, all linear layers) on the embedded model
with ``ftlab.train``, 8 examples a step (as ``step_overhead.py``), and reports the time
between its step events. The script measures, in one go:

- ``baseline alone``: one run with ``FTLAB_THREADS=off`` (OpenMP's and PyTorch's defaults:
  what ftlab did before it set threads and the wait policy);
- ``ftlab alone``: one run with ftlab's choice (``ftlab.threads``);
- ``ftlab pair``: two such runs started together. Only steps that both runs spent
  training count (the union of their step intervals must lie where both were stepping).
- ``baseline pair`` (``--baseline-pair``): the collapse, for comparison (slow).

Goals: each run of the pair <= 2.2x the lone step; ftlab alone <= 1.05x baseline alone.

    python benchmarks/contention.py [--steps 10] [--rounds 2] [--baseline-pair] [--env K=V ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def worker(steps: int, model: str) -> None:
    """One run: print JSON with wall-clock stamps of its step events and its thread setup."""
    import ftlab  # first: ftlab.threads must see the environment before torch loads OpenMP

    # isort: split
    import torch

    cfg = ftlab.RunConfig(model=model, method="lora", preset="cpu").replace(
        size=12, batch_size=8, steps=steps, eval_every=10_000,
        **{"eval.samples": 0}).resolved()
    stamps: list[float] = []
    ftlab.train(cfg, progress=False,
                on_event=lambda e: stamps.append(time.time()) if e.kind == "step" else None)
    share = ftlab.threads._SHARE
    print(json.dumps({"stamps": stamps, "threads": torch.get_num_threads(),
                      "neighbour_cpus": round(share.others, 2) if share else None,
                      "choice": ftlab.threads.CHOICE,
                      "omp": {k: v for k, v in os.environ.items()
                              if k.startswith(("OMP_", "GOMP_", "KMP_"))}}))


def busy_cpu_s() -> float:
    """CPU seconds all processes have spent busy on this machine so far (/proc/stat)."""
    fields = open("/proc/stat").readline().split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def launch(n: int, env: dict[str, str], steps: int, model: str) -> list[dict]:
    """Start ``n`` workers together; their reports once all have finished. Each report
    gets ``others_cpus``: CPUs' worth of time processes other than the workers used
    meanwhile (0 on a quiet machine; a noisy neighbour makes the figures meaningless)."""
    cmd = [sys.executable, __file__, "--worker", "--steps", str(steps), "--model", model]
    t, busy, kids = time.perf_counter(), busy_cpu_s(), children_cpu_s()
    procs = [subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    others = ((busy_cpu_s() - busy) - (children_cpu_s() - kids)) / (time.perf_counter() - t)
    return [{**json.loads(o.strip().splitlines()[-1]), "others_cpus": round(others, 2)}
            for o in outs]


def step_times(report: dict, window: tuple[float, float] | None = None,
               warmup: int = 1) -> list[float]:
    """Intervals between step events (the first ``warmup`` dropped), inside ``window``."""
    s = report["stamps"]
    pairs = list(zip(s, s[1:]))[warmup:]
    if window is not None:
        pairs = [(a, b) for a, b in pairs if a >= window[0] and b <= window[1]]
    return [b - a for a, b in pairs]


def lone(env: dict[str, str], steps: int, model: str) -> dict:
    [r] = launch(1, env, steps, model)
    return {"step_s": round(statistics.median(step_times(r)), 3), "steps": len(step_times(r)),
            "threads": r["threads"], "set": r["choice"].get("set"), "omp_env": r["omp"],
            "others_cpus": r["others_cpus"]}


def pair(env: dict[str, str], steps: int, model: str) -> dict:
    reports = launch(2, env, steps, model)
    # both were training between the later first step and the earlier last step
    window = (max(r["stamps"][0] for r in reports), min(r["stamps"][-1] for r in reports))
    runs = [step_times(r, window, warmup=0) for r in reports]
    return {"step_s": [round(statistics.median(t), 3) if t else None for t in runs],
            "steps": [len(t) for t in runs], "threads_at_end": [r["threads"] for r in reports],
            "neighbour_seen_cpus": [r["neighbour_cpus"] for r in reports],
            "set": reports[0]["choice"].get("set"), "others_cpus": reports[0]["others_cpus"]}


def merge(runs: list[dict]) -> dict:
    """Lone runs of several rounds as one: the median of the rounds' medians."""
    return {**runs[0], "step_s": round(statistics.median(r["step_s"] for r in runs), 3),
            "per_round": [r["step_s"] for r in runs], "steps": sum(r["steps"] for r in runs),
            "others_cpus": max(r["others_cpus"] for r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="lone runs of each configuration")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--baseline-pair", action="store_true", help="also time the collapse")
    ap.add_argument("--env", nargs="*", default=[],
                    help="extra environment for the ftlab runs (e.g. GOMP_SPINCOUNT=30000)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.steps, args.model)

    off = {"FTLAB_THREADS": "off"}
    ours = dict(kv.split("=", 1) for kv in args.env)
    t0 = time.perf_counter()
    out: dict = {"model": args.model, "cpus": os.cpu_count(), "steps": args.steps}
    base, mine = [], []
    for _ in range(args.rounds):  # alternate, so that drifts in the machine hit both
        base.append(lone(off, args.steps, args.model))
        mine.append(lone(ours, args.steps, args.model))
    out["baseline_alone"], out["ftlab_alone"] = merge(base), merge(mine)
    out["ftlab_pair"] = pair(ours, args.steps, args.model)
    if args.baseline_pair:
        out["baseline_pair"] = pair(off, args.steps, args.model)
    alone = out["ftlab_alone"]["step_s"]
    out["pair_over_alone"] = [round(s / alone, 2) for s in out["ftlab_pair"]["step_s"] if s]
    out["alone_over_baseline"] = round(alone / out["baseline_alone"]["step_s"], 3)
    if args.baseline_pair:
        out["baseline_pair_over_alone"] = [round(s / out["baseline_alone"]["step_s"], 2)
                                           for s in out["baseline_pair"]["step_s"] if s]
    out["goals"] = {"pair_over_alone": 2.2, "alone_over_baseline": 1.05}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
