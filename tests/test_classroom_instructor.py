"""The instructor's notebook (classroom/instructor.ipynb) runs against a class root.

The class root here holds two students' runs folders with real tiny-model runs, laid out as
the class server makes them (``ROOT/runs/<user>/``); one run folder of the same name in both,
as when one student copies another's. No accounts, no hub: tests/test_classroom.py does those.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import ftlab
from ftlab import classroom
from ftlab.engine import train

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "classroom" / "instructor.ipynb"
TINY = ftlab.RunConfig(model="tiny", preset="cpu").replace(
    size=20, steps=2, batch_size=4, eval_every=2, **{"eval.samples": 0})


@pytest.fixture(scope="module")
def class_root(tmp_path_factory):
    root = classroom.ClassRoot(tmp_path_factory.mktemp("class"))
    ana, ben = root.runs_of("ana"), root.runs_of("ben")
    runs = [train(TINY.replace(seed=seed), runs_dir=ana, progress=False) for seed in (0, 1)]
    assert all(r.status == "completed" for r in runs)
    shutil.copytree(runs[0].path, ben / runs[0].name)  # the same folder name in two folders
    return root


def test_the_class_view_shows_every_students_runs(class_root):
    view = classroom.ClassView(class_root)
    assert sorted((r["student"], r["status"]) for r in view.rows) == [
        ("ana", "completed"), ("ana", "completed"), ("ben", "completed")]
    view.select([(r["student"], r["run"]) for r in view.rows])
    assert len(view.compare.selected) == 3  # ana's and ben's run of the same name both shown
    assert {r["run"].split("/")[0] for r in view.compare.rows} == {"ana", "ben"}


def test_the_instructor_notebook_runs_against_a_class_root(class_root, monkeypatch):
    monkeypatch.setenv("FTLAB_CLASS_ROOT", str(class_root.path))  # the kernel inherits it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(class_root.path)}}).execute()
    outputs = {c.id: c.outputs for c in nb.cells if c.cell_type == "code"}
    assert "['ana', 'ben']" in outputs["root"][0]["data"]["text/plain"]
    verdicts = outputs["verdict"][0]["data"]["text/html"]
    assert "ana" in verdicts and "ben" in verdicts and "runs missing" in verdicts
