"""The environment check: installed versions against the project's own pins.

The versions these tests run with must pass (they are the tested ones); a version outside a
range or a missing package comes in through the check's seam (``versions=``), not by
installing it. The expected ranges are read from pyproject.toml here, independently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from ftlab import environment, runs
from ftlab.environment import MISSING, OK, OUTSIDE, PACKAGES, check_environment
from ftlab.models import choose_placement

from .test_cli import ftlab

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; ftlab then reads the metadata

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PINS = {Requirement(line).name: Requirement(line).specifier
        for line in PYPROJECT["dependencies"]}


def row(report, name):
    return next(p for p in (report.python, *report.packages) if p.name == name)


def pip_line(name: str) -> str:
    """The requirement as pyproject.toml writes it, e.g. transformers>=5.19,<5.24."""
    return next(line for line in PYPROJECT["dependencies"] if Requirement(line).name == name)


def test_this_machine_is_inside_the_tested_ranges():
    report = check_environment()
    assert report.ok, str(report)
    assert [p.name for p in report.packages] == list(PACKAGES)
    for name in ("torch", "transformers", "peft", "trl", "bitsandbytes", "ipywidgets",
                 "plotly"):
        p = row(report, name)
        assert p.status == OK and p.installed, p
        assert p.installed in PINS[name]  # the pin itself agrees, not only the check
        assert Requirement(f"{name}{p.tested}").specifier == PINS[name]
    assert row(report, "python").status == OK
    assert report.fix is None and "all versions are in the tested ranges" in str(report)


def test_device_dtype_and_threads_are_what_auto_picks():
    import torch

    report = check_environment()
    placement = choose_placement("auto")
    assert (report.device, report.dtype) == (placement.device, placement.dtype_name)
    assert report.threads == torch.get_num_threads()
    assert f"device {placement.device}, dtype {placement.dtype_name}" in str(report)


def test_a_version_above_the_pin_is_outside_with_the_fix():
    report = check_environment(versions={"transformers": "5.24.0"})
    t = row(report, "transformers")
    assert t.status == OUTSIDE and t.installed == "5.24.0"
    assert not report.ok and report.problems == [t]
    assert pip_line("transformers") == "transformers>=5.19,<5.24"  # what the fix quotes
    assert f"pip install '{pip_line('transformers')}'" in report.fix
    assert "restart the kernel" in report.fix
    text = str(report)
    assert "5.24.0" in text and OUTSIDE in text and pip_line("transformers") in text
    assert OUTSIDE in report._repr_html_() and "5.24.0" in report._repr_html_()


def test_a_version_below_the_pin_and_several_problems_give_one_install_line():
    report = check_environment(versions={"peft": "0.20.1", "plotly": "8.0.0"})
    assert [p.name for p in report.problems] == ["peft", "plotly"]
    assert f"pip install '{pip_line('peft')}' '{pip_line('plotly')}'" in report.fix
    assert row(report, "trl").status == OK  # the others keep their real versions


def test_a_missing_optional_package_is_said_and_not_an_error():
    report = check_environment(versions={"bitsandbytes": None})
    b = row(report, "bitsandbytes")
    assert b.status == MISSING and b.installed is None and "QLoRA" in b.note
    assert report.ok and report.fix is None
    assert "missing (only QLoRA" in str(report)


def test_a_missing_needed_package_is_a_problem_with_the_fix():
    report = check_environment(versions={"peft": None})
    assert row(report, "peft").status == MISSING and not report.ok
    assert f"'{pip_line('peft')}'" in report.fix


def test_a_python_outside_its_range_says_so():
    report = check_environment(versions={"python": "3.9.18"})
    assert row(report, "python").status == OUTSIDE and not report.ok
    assert f"Python {PYPROJECT['requires-python']}" in report.fix
    assert "pip install" not in report.fix  # pip cannot fix the interpreter


def test_the_installed_metadata_is_read_when_there_is_no_source_tree(monkeypatch):
    monkeypatch.setattr(environment, "_pins_from_pyproject", lambda path: None)
    pins, origin, python = environment.tested_pins()
    assert "metadata" in origin and python
    assert "transformers" in pins and "pytest" not in pins  # extras are not the course's
    assert check_environment(versions={"transformers": "4.0.0"}).problems[0].name == \
        "transformers"


def test_run_folders_record_the_same_training_packages():
    assert runs.PACKAGES == ("ftlab", "torch", "transformers", "peft", "trl", "bitsandbytes",
                             "accelerate")  # env.json's keys are unchanged
    assert set(runs.PACKAGES) - {"ftlab"} <= set(PACKAGES)


def test_cli_env_prints_the_table():
    out = ftlab("env")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["package", "installed", "tested", "range", "status"]
    for name in PACKAGES:
        assert any(line.split()[:1] == [name] and line.rstrip().endswith(OK)
                   for line in lines), name
    data = json.loads(ftlab("env", "--json").stdout)
    assert data["ok"] is True and [p["name"] for p in data["packages"]][1:] == list(PACKAGES)


def test_cli_env_exits_2_outside_the_range(monkeypatch):
    real = environment.installed_version
    monkeypatch.setattr(environment, "installed_version",
                        lambda name: "5.24.0" if name == "transformers" else real(name))
    out = ftlab("env")
    assert out.returncode == 2
    assert f"pip install '{pip_line('transformers')}'" in out.stdout
    assert out.stderr.strip() == ("ftlab: error: not the tested versions: transformers 5.24.0 "
                                  "(the fix is printed above)")
    data = json.loads(ftlab("env", "--json").stdout)
    assert data["ok"] is False and "transformers>=5.19,<5.24" in data["fix"]


@pytest.mark.parametrize("notebook", ["00_start_here.ipynb"])
def test_the_start_here_notebook_checks_the_environment_first(notebook):
    nb = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))
    first_code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "check_environment()" in "".join(first_code["source"])
