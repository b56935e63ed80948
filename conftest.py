"""How ``make test`` shares the work between its two pytest workers (``-n 2 --dist loadfile``).

Each test file and each notebook is one unit, run in order by one worker: a notebook's
cells share one kernel, a file's fixtures are built once. Notebooks that read another
notebook's runs from the run cache join its unit, so they run after it and find them:
capability regression reuses the instruction-collapse runs, the comparison table the runs
of the five method notebooks, and the browser's Run All of the reward lab that lab's runs.
Without pytest-xdist this file changes nothing.
"""

from __future__ import annotations

import pytest

# The start-here notebook runs in tests/test_pip_install.py instead of here: in a fresh
# environment installed with the README's pip-only cell, with that environment's kernel.
collect_ignore = ["notebooks/00_start_here.ipynb"]

SHARES_RUNS_WITH = {
    "notebooks/failure_modes/24_capability_regression.ipynb":
        "notebooks/failure_modes/22_instruction_collapse.ipynb",
}
ONE_UNIT = ("notebooks/methods/",)  # 15_compare reads the runs of 10-14


def unit_of(path: str) -> str:
    """The unit of work a test file or notebook belongs to (its path from the root)."""
    for folder in ONE_UNIT:
        if path.startswith(folder):
            return folder
    return SHARES_RUNS_WITH.get(path, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile``, with the units above in place of single files."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedRunsScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid.split("::", 1)[0])

    return SharedRunsScheduling(config, log)
