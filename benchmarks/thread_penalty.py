"""Does a run trained on a second thread (the panel's Run button) step as fast as one
trained on the main thread (``lab.run`` in a cell)?

The panel trains on a thread of its own so that the kernel stays free for the Stop button.
GNU OpenMP keeps a pool of worker threads per thread that started a parallel region; once
the main thread has computed anything in parallel, its idle pool counts against the CPUs,
and a second thread's team then runs with libgomp's throttled spin (its workers sleep at
almost every barrier). This script trains the same LoRA config (Lab 1's small arm, 8
steps, no evaluators) in one process, in the order given, and prints each run's mean step:

- ``thread`` before anything ran on the main thread (a fresh kernel pressing Run first);
- ``main`` (``lab.run`` in a cell);
- ``thread`` again, after the main thread has computed (Run pressed after any cell that
  trained or generated).

The panel's two paths can be named too: ``button`` (what Run does: ``panel.start()`` and
wait, on the panel's thread) and ``run`` (``panel.run()``, which trains on the calling
thread since 2026-12-07 for this reason).

    python benchmarks/thread_penalty.py [--order thread,main,thread] [--steps 8]
    python benchmarks/thread_penalty.py --order main,button,run

Measured 2026-12-07 on 2 cores, nothing else running: thread first 1.52 s a step, main
1.50 s, thread after main 1.92 s; this script as committed: 1.51, 1.62 and 2.14 s; in other
processes main 1.43-1.53 s against thread after main 2.10-2.26 s (1.4-1.5x). Beside a busy
neighbour (one thread each, ``ftlab.threads``) the two were within 7% (2.30 s against 2.46
s). Not the widgets: a bare ``threading.Thread`` pays the same.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", default="thread,main,thread")
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    os.environ.setdefault("FTLAB_RUNS", tempfile.mkdtemp(prefix="ftlab-thread-penalty-"))

    from ftlab.engine import train
    from ftlab.labs.overfitting import Overfitting
    from ftlab.widgets import ControlPanel

    cfg = Overfitting().config("small", 0, steps=args.steps, eval_every=args.steps)

    steps: list[float] = []

    def once() -> None:
        run = train(cfg, evaluators={}, progress=False, reuse=False)
        steps.append(run.final["step_time_s"])

    panel = None

    def on_panel(button: bool) -> None:
        nonlocal panel
        panel = panel or ControlPanel(cfg, knobs=["lr"], evaluators={})
        if button:
            panel.start()
            run = panel.wait()
        else:
            run = panel.run()
        steps.append(run.final["step_time_s"])

    for where in args.order.split(","):
        t0 = time.perf_counter()
        if where in ("button", "run"):
            on_panel(where == "button")
        elif where == "thread":
            worker = threading.Thread(target=once)
            worker.start()
            worker.join()
        elif where == "main":
            once()
        else:
            raise SystemExit(f"--order: main, thread, button or run, not {where!r}")
        step = steps[-1]
        print(f"{where:6s} {step:.3f} s a step ({time.perf_counter() - t0:.1f} s the run)",
              flush=True)


if __name__ == "__main__":
    main()
