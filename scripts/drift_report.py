"""Which installed versions differ from constraints.txt, and which releases the ranges in
pyproject.toml leave out (drift.sh runs it in the scratch environment)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

from packaging.version import Version

from ftlab.environment import TRAINING_PACKAGES

WATCHED = (*TRAINING_PACKAGES, "ipywidgets", "plotly", "gguf", "nbval")


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m[1].lower().replace("_", "-")] = m[2]
    return pins


def _newest_released(name: str) -> str | None:
    out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name],
                         capture_output=True, text=True).stdout
    m = re.search(r"\(([^)]+)\)", out)
    return m[1] if m else None


def main(constraints: str) -> None:
    pins = _pins(constraints)
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version
                 for d in metadata.distributions()}
    moved = sorted((n, pins[n], v) for n, v in installed.items() if n in pins and pins[n] != v)
    print(f"drift: {len(moved)} of {len(pins)} packages newer (or older) than constraints.txt")
    for name, pin, now in moved:
        print(f"  {name:<28} {pin:>12} -> {now}")
    print("drift: newer releases that were not installed (watched packages)")
    for name in WATCHED:
        have, newest = installed.get(name.lower()), _newest_released(name)
        if have and newest and Version(newest.split("+")[0]) > Version(have.split("+")[0]):
            print(f"  {name:<28} installed {have}, released {newest}: held back (a range in "
                  "pyproject.toml, or install.sh's torch pin)")
        elif have:
            print(f"  {name:<28} installed {have}: the newest release")


if __name__ == "__main__":
    main(sys.argv[1])
