"""A lab notebook as a learner meets it in JupyterLab, after Run All: the reward-hacking
lab, whose panel shows a policy's samples and whose verdict reads the most numbers.

``make test`` runs this file after the notebook itself (the same unit of work, conftest.py):
its runs are in the run cache, so Run All replays them as a learner's second visit does.
Run alone, the notebook trains them first (minutes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_panel_browser import KERNEL_IDLE, NB_PANEL, SHOTS, TOKEN

pytestmark = pytest.mark.browser
# the run cache as pytest started (``make test`` sets it; the notebooks nbval runs before any
# test replaced it write their runs there), read when this module is collected
STARTED_WITH_RUNS = os.environ.get("FTLAB_RUNS")
NOTEBOOK = "failure_modes/23_reward_hacking.ipynb"
RUN_ALL = 1_800_000  # ms: a cold run cache trains the whole lab
# each row of the panel's samples table (the notebook's first): its cells' text
SAMPLE_ROWS = """(root) => Array.from(root.querySelector('table.ftlab-samples')
  .querySelectorAll('tr')).slice(1)
  .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent))"""
# the legend of the panel's figure (the notebook's first plot; the lab's own figures follow)
PANEL_LEGEND = """(root) => Array.from(root.querySelector('.js-plotly-plot')
  .querySelectorAll('.legendtext')).map(e => e.textContent)"""
CELLS_DONE = """() => { const w = window.jupyterapp?.shell?.currentWidget;
  const cells = w?.content?.widgets || [];
  return w?.sessionContext?.session?.kernel?.status === 'idle' && cells.length > 0 &&
    cells.every(c => c.model.type !== 'code' || c.model.executionCount !== null); }"""


def shown(text: str) -> str:
    """An answer as the samples table shows it, without its marks: the run's own text
    starts with this."""
    return text.replace("[no stop]", "").strip().removesuffix("…")


def notebook_runs() -> Path:
    """The run cache where this session's nbval run of the notebook left its runs (as
    pytest started, or as the tests replaced it before the notebook ran); else this
    test's own, and Run All trains them."""
    from ftlab.labs.reward_hacking import RewardHacking
    from ftlab.runs import find_run

    lab = RewardHacking()
    for runs in (STARTED_WITH_RUNS, os.environ.get("FTLAB_RUNS")):
        if runs and find_run(lab.config("hacked", 0), runs, lab.watch):
            return Path(runs)
    return Path(os.environ["FTLAB_RUNS"])


def test_reward_lab_after_run_all(course_server, page):
    runs = notebook_runs()
    with course_server(runs) as url:
        run_all_and_look(page, url, runs)


def run_all_and_look(page, url: str, runs: Path) -> None:
    from playwright.sync_api import expect

    from ftlab.labs.reward_hacking import RewardHacking
    from ftlab.widgets.labels import METRICS

    page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={TOKEN}&reset", timeout=180_000)
    page.wait_for_function(KERNEL_IDLE, timeout=180_000)
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
    t0 = time.perf_counter()
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    nb = page.locator(NB_PANEL)
    try:
        page.wait_for_function(CELLS_DONE, timeout=RUN_ALL, polling=1000)
        print(f"Run All of {NOTEBOOK}: {time.perf_counter() - t0:.0f} s")
        assert nb.locator(".jp-OutputArea-output[data-mime-type="
                          "'application/vnd.jupyter.stderr']").count() == 0
        assert nb.locator(".jp-OutputArea-output", has_text="Traceback").count() == 0

        # the verdict: its conditions on screen, every number folded away
        verdict = nb.locator("table", has_text="holds").last
        verdict.scroll_into_view_if_needed()
        expect(verdict).to_be_visible()
        width = page.viewport_size["width"]
        for th in verdict.locator("th").all():
            box = th.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
        details = nb.locator("details", has_text="numbers measured").last
        assert details.get_attribute("open") is None

        # the panel's legend names its lines as the course does, never by code names
        legend = page.evaluate(
            f"() => ({PANEL_LEGEND})(document.querySelector('{NB_PANEL}'))")
        readable = {name for name, _ in METRICS.values()}
        assert legend and set(legend) <= readable, legend

        # each sampled answer sits on its own question's row: compared with the run folder
        run = RewardHacking(runs_dir=runs).run("hacked", 0, progress=False)
        assert run.from_cache, "the notebook's own run should be in the run cache"
        asked = {(r["step"], s["question"]): s["answer"] for r in run.samples
                 for s in r["samples"]}
        rows = page.evaluate(f"() => ({SAMPLE_ROWS})(document.querySelector('{NB_PANEL}'))")
        assert len(rows) >= 2, rows
        for step_cell, question, _expected, answer, *_ in rows:
            step = int(step_cell.split()[0])
            assert (step, question) in asked, (step, question)
            assert asked[(step, question)].startswith(shown(answer)), (question, answer)
        page.screenshot(path=str(SHOTS / "reward_lab_run_all.png"), full_page=True)
    finally:
        page.evaluate("window.jupyterapp.shell.currentWidget?.sessionContext?.shutdown()")
    assert not page.errors, page.errors
