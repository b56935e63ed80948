"""How long a learner waits, after pressing Run in a lab's panel, for the live curve's
first point.

For each lab, in a fresh process as a notebook has it when its panel cell has run (ftlab
imported, the lab built, nothing trained yet), with an empty run cache and an empty
evaluation cache: the seconds from ``panel.start()`` (what Run does) to the first point
in the panel's figure (the validation loss of the untrained model, at step 0), and to the
first training-loss point (step 1). Then Stop, as a learner would.

    python benchmarks/first_point.py [--labs overfitting format_mismatch ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

LABS = {  # lab: (module, class, the arm its notebook's panel starts from)
    "overfitting": ("overfitting", "Overfitting", "small"),
    "format_mismatch": ("format_mismatch", "FormatMismatch", "foreign_template"),
    "instruction_collapse": ("collapse", "NarrowFinetune", "aggressive"),
    "reward_hacking": ("reward_hacking", "RewardHacking", "hacked"),
    "methods": ("methods", "MethodsLab", "lora"),
}
LIMIT_S = 600.0


def measure(lab_name: str) -> dict:
    """One lab, in this process: seconds to the first point and to the first train loss."""
    import importlib

    # plotly reads pandas from sys.modules without the import lock: polling the figure from
    # this thread while the run's thread imports pandas (datasets does) can meet it half built
    import pandas  # noqa: F401
    from time_profile import fresh_caches

    work = fresh_caches("ftlab-first-point-")
    module, cls, arm = LABS[lab_name]
    lab = getattr(importlib.import_module(f"ftlab.labs.{module}"), cls)()
    panel = lab.panel(arm)
    first = train = None
    t0 = time.perf_counter()
    panel.start()
    while train is None and panel.running and time.perf_counter() - t0 < LIMIT_S:
        pts = panel.dashboard.points
        now = time.perf_counter() - t0
        if first is None and any(xs for xs, _ in pts.values()):
            first = now
        if pts.get("train loss", ((),))[0]:
            train = now
        time.sleep(0.05)
    panel.stop()
    panel.wait()
    shutil.rmtree(work, ignore_errors=True)
    return {"lab": lab_name, "arm": arm, "first_point_s": first, "first_train_loss_s": train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labs", nargs="+", choices=list(LABS), default=list(LABS))
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("--one", choices=list(LABS), help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    rows = []
    # the children run from benchmarks/: a relative PYTHONPATH (PYTHONPATH=src) would point
    # nowhere there, and they would measure whatever ftlab is installed instead
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p))
    for name in args.labs:  # one process each: nothing loaded or cached from the lab before
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                             text=True, cwd=Path(__file__).parent, env=env)
        if out.returncode != 0:
            sys.exit(f"{name}: the measurement failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    print(f"{'lab':<22}{'arm':<18}{'first point s':>14}{'first train loss s':>20}")
    for r in rows:
        print(f"{r['lab']:<22}{r['arm']:<18}{cell(r['first_point_s']):>14}"
              f"{cell(r['first_train_loss_s']):>20}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
