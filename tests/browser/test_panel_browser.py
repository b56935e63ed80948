"""The control panel in a real browser: JupyterLab 4, Notebook 7 and Voila.

What a learner does, checked in headless chromium: open the notebook, run it, see the
panel and the plot (with the 3 points of the notebook's own run), click Run, see the loss
curve gain points while training goes on, click Stop, see the status say stopped. And what
a learner must not meet (issue 32): a red stderr box, a verdict whose conditions sit off
the page, legend entries named otherwise than the panel names its lines, a best-loss star
anywhere but at the lowest loss evaluated.
Screenshots go to $FTLAB_SHOTS (default /tmp/ftlab-shots).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOK, TOKEN = "panel.ipynb", "ftlab-test"  # as served by conftest.py
SHOTS = Path(os.environ.get("FTLAB_SHOTS", "/tmp/ftlab-shots"))
pytestmark = pytest.mark.browser

# number of points in the train-loss trace, from plotly's own data on the graph div and
# from the drawn markers' parent path (-1 while no plot is there)
POINTS = """(root) => { const g = (root || document).querySelector('.js-plotly-plot');
  if (!g || !g.data || !g.data[0]) return -1;
  return (g.data[0].x || []).length; }"""
NB_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
KERNEL_IDLE = """() => { const w = window.jupyterapp?.shell?.currentWidget;
    return w?.sessionContext?.session?.kernel?.status === 'idle'; }"""
SLOW = 180_000  # ms: the machine may be shared with training runs
# the legend entries and the star of the loss plot, as plotly drew them
LEGEND = """(root) => Array.from((root || document).querySelectorAll(
  '.js-plotly-plot .legendtext')).map(e => e.textContent)"""
BEST = """(root) => { const g = (root || document).querySelector('.js-plotly-plot');
  const by = n => g.data.find(t => t.name === n) || {x: [], y: []};
  const val = by('validation loss'), best = by('lowest validation loss');
  return {val_x: Array.from(val.x), val_y: Array.from(val.y), best_x: Array.from(best.x),
          best_y: Array.from(best.y)}; }"""


def points(page, scope: str = "") -> int:
    return page.evaluate(f"() => ({POINTS})(document.querySelector('{scope or 'body'}'))")


def wait_points(page, at_least: int, scope: str = "") -> None:
    page.wait_for_function(
        f"() => ({POINTS})(document.querySelector('{scope or 'body'}')) >= {at_least}",
        timeout=SLOW)


def assert_widgets_rendered(root) -> None:
    from playwright.sync_api import expect

    expect(root.locator("button.jupyter-button", has_text="Run").first).to_be_visible(
        timeout=SLOW)
    expect(root.locator("button.jupyter-button", has_text="Stop").first).to_be_visible()
    expect(root.locator(".widget-slider").first).to_be_visible()
    expect(root.locator(".js-plotly-plot").first).to_be_visible(timeout=SLOW)
    expect(root.get_by_text("Browser test panel", exact=True)).to_be_visible()
    assert root.get_by_text("Error displaying widget").count() == 0
    assert root.get_by_text("Loading widget...").count() == 0


def record_first_point(name: str, seconds: float) -> None:
    """How long a learner waits from Run to the first plotted point: printed (``-s`` shows
    it) and kept in $FTLAB_SHOTS/first_point.json, a measurement, never asserted."""
    path = SHOTS / "first_point.json"
    seen = json.loads(path.read_text()) if path.exists() else {}
    seen[name] = round(seconds, 2)
    path.write_text(json.dumps(seen, indent=2))
    print(f"{name}: Run to the first plotted point in {seconds:.1f} s")


def run_and_stop(page, root, scope: str, name: str) -> None:
    """Click Run, see the curve grow while training goes on, click Stop, see 'stopped'."""
    from playwright.sync_api import expect

    before = points(page, scope)
    clicked = time.perf_counter()
    root.locator("button.jupyter-button", has_text="Run").first.click()
    wait_points(page, before + 1, scope)
    record_first_point(name, time.perf_counter() - clicked)
    wait_points(page, before + 2, scope)  # live: points arrive while the run goes on
    expect(root.get_by_text("running").first).to_be_visible()
    root.locator("button.jupyter-button", has_text="Stop").first.click()
    expect(root.get_by_text("stopped by you")).to_be_visible(timeout=SLOW)
    after = points(page, scope)
    assert before + 2 <= after < before + 200, (before, after)
    page.screenshot(path=str(SHOTS / f"{name}_after_stop.png"), full_page=True)


def assert_what_a_learner_reads(page, root, scope: str) -> None:
    """No stderr box; the verdict's condition columns on screen (all numbers folded away);
    the legend entries are the panel's own names for its lines."""
    from playwright.sync_api import expect

    from ftlab.widgets.labels import metric_label

    assert root.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    verdict = root.locator("table", has_text="fast: learns the task").first
    expect(verdict).to_be_visible(timeout=SLOW)
    width = page.viewport_size["width"]
    for th in verdict.locator("th").all():
        box = th.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
    assert not root.get_by_text("fast.number_19").first.is_visible()  # in <details>, closed
    legend = page.evaluate(f"() => ({LEGEND})(document.querySelector('{scope or 'body'}'))")
    assert sorted(legend) == sorted(metric_label(n) for n in ("train loss", "val loss",
                                                              "best")), legend


def assert_star_at_the_lowest_loss(page, scope: str) -> None:
    """After Stop, the star marks the lowest validation loss evaluated (the closing
    evaluation of the stopped run included)."""
    seen = page.evaluate(f"() => ({BEST})(document.querySelector('{scope or 'body'}'))")
    low = min(range(len(seen["val_y"])), key=lambda i: (seen["val_y"][i], seen["val_x"][i]))
    assert (seen["best_x"], seen["best_y"]) == ([seen["val_x"][low]], [seen["val_y"][low]]), seen


def test_jupyterlab_run_and_stop(lab_url, page):
    from playwright.sync_api import expect

    page.goto(f"{lab_url}/lab/tree/{NOTEBOOK}?token={TOKEN}&reset", timeout=SLOW)
    page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    nbp = page.locator(NB_PANEL)
    try:
        assert_widgets_rendered(nbp)
        wait_points(page, 3, NB_PANEL)  # the notebook's own panel.run(steps=3)
        expect(nbp.locator(".widget-readout", has_text="200").first).to_be_visible(
            timeout=SLOW)  # last cell ran: steps set to 200
        expect(nbp.get_by_text("completed at step 3")).to_be_visible()
        assert_what_a_learner_reads(page, nbp, NB_PANEL)
        page.screenshot(path=str(SHOTS / "lab_panel.png"), full_page=True)
        run_and_stop(page, nbp, NB_PANEL, "lab")
        assert_star_at_the_lowest_loss(page, NB_PANEL)
        assert not page.errors, page.errors
    finally:
        page.evaluate("window.jupyterapp.shell.currentWidget?.sessionContext?.shutdown()")


def test_notebook7_renders_the_panel(lab_url, page):
    from playwright.sync_api import expect

    page.goto(f"{lab_url}/notebooks/{NOTEBOOK}?token={TOKEN}", timeout=SLOW)
    page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    root = page.locator("body")
    assert_widgets_rendered(root)
    wait_points(page, 3)
    expect(root.get_by_text("completed at step 3")).to_be_visible(timeout=SLOW)
    page.screenshot(path=str(SHOTS / "notebook7_panel.png"), full_page=True)
    page.evaluate("window.jupyterapp.shell.currentWidget?.sessionContext?.shutdown()")
    # Notebook 7's own shell logs two errors of its own here ('filebrowser:open-path' not
    # registered, a settings 'schema'); only errors from widgets or plots fail the test
    ours = [e for e in page.errors if any(k in e.lower() for k in ("widget", "plotly", "model"))]
    assert not ours, page.errors


def test_voila_app_run_and_stop(voila_url, page):
    # Voila answers the request only once its kernel has run the whole notebook (the model
    # loads, the first steps train): on a slow machine beside a training neighbour that took
    # over playwright's default 30 s
    page.goto(voila_url, timeout=SLOW)
    root = page.locator("body")
    assert_widgets_rendered(root)
    # Voila ran the notebook before the page attached: the 3 points are there only
    # because the dashboard syncs the FigureWidget state (ftlab.widgets.figures.sync_state)
    wait_points(page, 3)
    assert points(page) == 3
    page.screenshot(path=str(SHOTS / "voila_panel.png"), full_page=True)
    run_and_stop(page, root, "", "voila")
    assert not page.errors, page.errors
