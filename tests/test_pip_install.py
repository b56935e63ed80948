"""The README's pip-only install (a hosted notebook, where ``make`` cannot run), as written.

A fresh virtual environment gets what a hosted image already has (torch, a kernel); then
the README's cell runs line by line, with pip alone (``%pip`` is that kernel's ``python -m
pip``), from a copy of this checkout in place of the repository URL; then the start-here
notebook runs with that environment's kernel. This is where ``make test`` runs the
start-here notebook (``conftest.py`` leaves it out of nbval's collection): in the
environment a learner without ``make`` has, which is the stronger check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_start_here.ipynb"
HOSTED_BASE = ["torch==2.13.0", "ipykernel"]  # what Colab or Kaggle images already hold
SKIP = shutil.ignore_patterns(".git", ".venv", "venv", "runs", "build", "*.egg-info",
                              "node_modules", "exports", "student", "__pycache__")

pytestmark = pytest.mark.slow


def readme_cell() -> list[str]:
    """The lines of the README's hosted-notebook cell (``%pip ...`` and ``!python ...``)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### On a hosted notebook.*?```python\n(.*?)```", text, re.S)
    assert block, "the README has no hosted-notebook cell"
    return [line.split("  #")[0].strip() for line in block[1].splitlines() if line.strip()]


def as_commands(lines: list[str], python: str, checkout: Path) -> list[list[str]]:
    """Each cell line as the kernel runs it: ``%pip`` is its ``python -m pip``, ``!python``
    its python; the repository URL becomes the local copy of this checkout."""
    out = []
    for line in lines:
        line = re.sub(r"git\+https://\S+?\"", f'file://{checkout}"', line)
        if line.startswith("%pip "):
            args = line.removeprefix("%pip ")
            out.append([python, "-m", "pip", *_split(args)])
        elif line.startswith("!python "):
            out.append([python, *_split(line.removeprefix("!python "))])
        else:
            raise AssertionError(f"a line the test cannot run as a learner would: {line}")
    return out


def _split(args: str) -> list[str]:
    import shlex

    return shlex.split(args)


def _run(cmd: list[str], timeout: int, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return time.perf_counter() - t0


def test_the_readme_pip_cell_installs_and_the_start_here_notebook_runs_in_its_kernel(
        tmp_path, capsys):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    checkout = tmp_path / "ftlab"
    shutil.copytree(ROOT, checkout, ignore=SKIP)  # pip builds in its source: not in ours
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "env")], check=True)
    python = str(tmp_path / "env" / "bin" / "python")
    times = {"hosted base (torch, ipykernel)":
             _run([python, "-m", "pip", "install", "-q", *HOSTED_BASE], 900)}
    t0 = time.perf_counter()
    for cmd in as_commands(readme_cell(), python, checkout):
        _run(cmd, 900)
    times["the README's cell"] = time.perf_counter() - t0

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys, ftlab\nprint('KERNEL', sys.executable, ftlab.__file__)"))
    env = {**os.environ, "FTLAB_RUNS": str(tmp_path / "runs")}
    env.pop("PYTHONPATH", None)  # the kernel sees its own environment only
    # that environment's kernel, registered as a hosted image registers its own
    kernels = tmp_path / "env" / "share" / "jupyter" / "kernels"
    _run([python, "-m", "ipykernel", "install", "--name", "ftlab-pip", "--prefix",
          str(tmp_path / "env")], 120)
    km = KernelManager(kernel_name="ftlab-pip",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    t0 = time.perf_counter()
    NotebookClient(nb, km=km, timeout=900,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=env)
    times["00_start_here in that kernel"] = time.perf_counter() - t0

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    kernel = re.search(r"KERNEL (\S+) (\S+)", text)
    assert kernel and kernel[1] == python, text[-500:]
    assert kernel[2].startswith(str(tmp_path / "env")), kernel[2]  # installed, not this checkout
    with capsys.disabled():
        print("\npip-only install: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
