"""The student version and the grading, both with nbgrader's own preprocessors.

The notebooks in the repository are the instructor version: each exercise's solution sits
between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a cell that nbgrader's metadata
marks as a solution cell, and each check cell is an nbgrader *grade* cell worth points.

- ``student_version(nb)``: nbgrader's ``ClearSolutions`` (each solution region becomes
  ``STUB``, a placeholder that runs: a function returns None, an answer stays ``...``),
  ``LockCells``, ``ClearOutput``, ``ComputeChecksums`` and ``CheckCellMetadata``, as
  ``nbgrader generate_assignment`` runs them.
- ``grading_notebook(nb)``: only the exercise cells a grader runs (solutions and checks; every
  one is self-contained), so a submission is graded in seconds without re-running training.
- ``grade(nb)``: executes that with nbgrader's ``Execute`` preprocessor (a kernel, a per-cell
  timeout: ``CELL_TIMEOUT_S``) and scores each check cell with ``nbgrader.utils.determine_grade``
  (an error or any stderr output: zero; otherwise its points).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

STUB = "...  # YOUR CODE HERE (see the instructions above)"
CELL_TIMEOUT_S = 30  # nbgrader's default; every check takes a few seconds (docs/exercises.md)
GRADED_ROLES = ("setup", "solution", "check")


def _role(cell) -> str | None:
    return cell.get("metadata", {}).get("ftlab", {}).get("role")


def student_version(nb):
    """The student version of one instructor notebook (a new notebook; ``nb`` is untouched)."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb = nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))
    resources: dict = {}
    for pre in (LockCells(), ClearSolutions(code_stub={"python": STUB}), ClearOutput(),
                ComputeChecksums(), CheckCellMetadata()):
        nb, resources = pre.preprocess(nb, resources)
    return nb


def build_student(out_dir: str | Path, notebooks_dir: str | Path = "notebooks") -> list[Path]:
    """Write the student version of every notebook under ``notebooks_dir`` to ``out_dir``,
    keeping the folders (so links between notebooks still work)."""
    src, out = Path(notebooks_dir), Path(out_dir)
    written = []
    for path in sorted(src.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_version(nb), target)
        written.append(target)
    return written


def grading_notebook(nb):
    """Only the cells a grader runs: each exercise's solution cell and its check."""
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    out.cells = [nbformat.from_dict(dict(c)) for c in nb.cells if _role(c) in GRADED_ROLES]
    return out


@dataclass
class CellGrade:
    grade_id: str
    exercise: str
    points: float
    max_points: float
    seconds: float
    feedback: str


@dataclass
class Grades:
    cells: list[CellGrade] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # errors outside check cells (crashes)
    wall_s: float = 0.0

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def max_points(self) -> float:
        return sum(c.max_points for c in self.cells)

    def by_exercise(self) -> dict[str, CellGrade]:
        return {c.exercise: c for c in self.cells}

    def __str__(self) -> str:
        lines = [f"{c.exercise:6s} {c.points:g}/{c.max_points:g}  ({c.seconds:.1f} s)"
                 + (f"  {c.feedback.splitlines()[0]}" if c.feedback else "") for c in self.cells]
        return "\n".join(lines + [f"total {self.points:g}/{self.max_points:g} "
                                  f"in {self.wall_s:.0f} s"])


def _seconds(cell) -> float:
    from datetime import datetime

    t = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(t["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(t["shell.execute_reply"].replace("Z", "+00:00"))
        return (end - start).total_seconds()
    except (KeyError, ValueError):
        return float("nan")


def _error_text(cell) -> str:
    import re

    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            text = "\n".join(out.get("traceback", [])) or f"{out['ename']}: {out['evalue']}"
            return re.sub(r"\x1b\[[0-9;]*m", "", text)
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return out.get("text", "")
    return ""


def grade(nb, timeout: int = CELL_TIMEOUT_S,
          cwd: str | Path | None = None) -> tuple[Grades, object]:
    """Execute a notebook's graded exercise cells and score them as nbgrader does."""
    from nbgrader.preprocessors import Execute
    from nbgrader.utils import determine_grade, is_grade

    graded = grading_notebook(nb)
    t0 = time.perf_counter()
    ex = Execute(timeout=timeout, record_timing=True)
    graded, _ = ex.preprocess(graded, {"metadata": {"path": str(cwd or Path.cwd())}})
    grades = Grades(wall_s=time.perf_counter() - t0)
    for cell in graded.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and is_grade(cell):
            points, max_points = determine_grade(cell)
            grades.cells.append(CellGrade(meta["grade_id"], cell.metadata["ftlab"]["exercise"],
                                          points or 0.0, max_points, _seconds(cell),
                                          _error_text(cell)))
        elif _error_text(cell):
            grades.errors.append(f"{meta.get('grade_id')}: {_error_text(cell)}")
    return grades, graded
