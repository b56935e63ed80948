"""The exercises: the student version is built with nbgrader, and graded as nbgrader grades.

Solutions (the instructor notebooks) get full points, stubs (the student version) zero without
a crash, and one wrong answer per lab zero with feedback. Only the exercise cells are run
(each is self-contained), all twelve notebooks in one kernel per variant.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from ftlab.exercises import CHECKS  # noqa: E402
from ftlab.exercises.concepts import QUESTIONS, _same  # noqa: E402
from ftlab.exercises.student import (  # noqa: E402
    CELL_TIMEOUT_S,
    STUB,
    build_student,
    grade,
    grading_notebook,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
LABS = [p for p in PATHS if p.parent.name == "failure_modes"]
CHECK_LIMIT_S = 10  # each check cell, on 2 busy cores; the grader allows CELL_TIMEOUT_S

# one deliberately wrong answer per lab, and a phrase its feedback must contain
WRONG = {
    "20.2": ('def early_stop(val_losses, patience):\n    best, best_i, bad = float("inf"), 0, 0\n'
             '    for i, loss in enumerate(val_losses):\n        if loss < best:\n'
             '            best, best_i, bad = loss, i, 0\n        else:\n            bad += 1\n'
             '            if bad > patience:\n                return i, best_i\n'
             '    return None, best_i', "stops one evaluation late"),
    "21.1": ('def encode_chat(row, tok):\n'
             '    full = tok.apply_chat_template(row["messages"], tokenize=False).rstrip()\n'
             '    ids = tok(full, add_special_tokens=False)["input_ids"]\n'
             '    return {"input_ids": ids, "labels": list(ids)}', "prompt tokens"),
    "22.1": ('def paired_interval(before, after):\n    import math, statistics\n'
             '    from ftlab.evaluate.behaviour import t975\n    n = len(before)\n'
             '    d = statistics.fmean(after) - statistics.fmean(before)\n'
             '    se = math.sqrt(statistics.variance(before) / n\n'
             '                   + statistics.variance(after) / n)\n'
             '    return d, d - t975(n - 1) * se, d + t975(n - 1) * se', "item by item"),
    "23.1": ('def gold(completion, answers):\n    from ftlab.answers import is_correct\n'
             '    return 1.0 if is_correct(completion, answers) else 0.0', "15 / words"),
    "24.1": ('def wilson(k, n):\n    import math\n    p = k / n\n'
             '    half = 1.96 * math.sqrt(p * (1 - p) / n)\n    return p - half, p + half',
             "p ± 1.96·se"),
}


def role(cell) -> str | None:
    return cell.get("metadata", {}).get("ftlab", {}).get("role")


def exercise(cell) -> str | None:
    return cell.get("metadata", {}).get("ftlab", {}).get("exercise")


@pytest.fixture(scope="module")
def instructor():
    return {p: nbformat.read(p, as_version=4) for p in PATHS}


@pytest.fixture(scope="module")
def student(instructor, tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    written = build_student(out, NOTEBOOKS)
    assert len(written) == len(PATHS)
    return {p: nbformat.read(out / p.relative_to(NOTEBOOKS), as_version=4) for p in PATHS}


def combined(notebooks) -> nbformat.NotebookNode:
    """The graded cells of all twelve notebooks, in one notebook (grade ids are unique)."""
    nbs = list(notebooks)
    out = nbformat.v4.new_notebook(metadata=nbs[0].metadata)
    for nb in nbs:
        out.cells += grading_notebook(nb).cells
    return out


# ------------------------------------------------------------------ the notebooks


def test_every_notebook_has_exercises_before_try_next(instructor):
    for path, nb in instructor.items():
        roles = [role(c) for c in nb.cells]
        kinds = {exercise(c) for c in nb.cells if role(c) in ("solution", "predict")}
        assert len(kinds) >= 2, (path.name, kinds)
        assert roles.count("concepts") == 1, path.name
        if path.name != "00_start_here.ipynb":
            assert roles.count("solution") >= 1 and roles.count("check") >= 1, path.name
        assert any("If your verdict failed or your numbers differ" in c.source for c in nb.cells)
        first = roles.index("text")
        try_next = [i for i, c in enumerate(nb.cells)
                    if c.cell_type == "markdown" and "## Try next" in c.source]
        assert not try_next or first < try_next[-1] or first == len(roles), path.name
        for c in nb.cells:
            if role(c) == "check":
                assert c.metadata.nbgrader["grade"] and c.metadata.nbgrader["points"] > 0
                assert re.search(r'check\("[\d.]+", \w+\)', c.source), c.source
                assert exercise(c) in CHECKS
            if role(c) in ("solution", "predict", "concepts"):
                assert "### BEGIN SOLUTION" in c.source and c.metadata.nbgrader["solution"]
        text = " ".join(c.source for c in nb.cells if role(c))
        for word in ("CI", "issue", "this session"):
            assert not re.search(rf"\b{word}\b", text), (path.name, word)


def test_concept_answers_in_the_notebooks_are_the_right_ones(instructor):
    for path, nb in instructor.items():
        cell = next(c for c in nb.cells if role(c) == "concepts")
        line = next(ln for ln in cell.source.splitlines() if ln.startswith("Q1, Q2, Q3 ="))
        answers = ast.literal_eval(line.split("=", 1)[1].strip())
        key = exercise(cell).split(".")[0]
        assert all(_same(a, q) for a, q in zip(answers, QUESTIONS[key], strict=True)), path.name


def test_student_version_has_stubs_and_keeps_everything_else(instructor, student):
    for path in PATHS:
        inst, stud = instructor[path], student[path]
        assert len(inst.cells) == len(stud.cells)
        for a, b in zip(inst.cells, stud.cells):
            assert "BEGIN SOLUTION" not in b.source
            if role(a) in ("solution", "predict", "concepts"):
                assert STUB in b.source
                header = a.source.split("### BEGIN SOLUTION")[0]
                assert b.source.startswith(header)  # the def line and its docstring stay
            else:
                assert a.source == b.source
            if b.cell_type == "code":
                assert b.outputs == []


# ------------------------------------------------------------------ grading


def test_solutions_get_full_points_each_check_in_seconds(instructor):
    grades, _ = grade(combined(instructor.values()))
    assert not grades.errors, grades.errors
    assert {c.exercise for c in grades.cells} == set(CHECKS)
    assert grades.points == grades.max_points, str(grades)
    slow = {c.exercise: c.seconds for c in grades.cells if not c.seconds < CHECK_LIMIT_S}
    assert not slow, slow
    assert CHECK_LIMIT_S < CELL_TIMEOUT_S


def test_stubs_get_zero_and_nothing_crashes(student):
    grades, _ = grade(combined(student.values()))
    assert not grades.errors, grades.errors  # the stubs themselves run
    assert grades.points == 0 and grades.max_points == len(CHECKS), str(grades)
    for c in grades.cells:
        assert "not yet" in c.feedback or "not written yet" in c.feedback, c.feedback
        assert "Traceback" not in c.feedback and 'File "' not in c.feedback, c.feedback


def test_a_wrong_answer_per_lab_gets_zero_with_feedback(instructor):
    nbs = []
    for path in LABS:
        nb = nbformat.from_dict(nbformat.reads(nbformat.writes(instructor[path]), as_version=4))
        for c in nb.cells:
            if role(c) == "solution" and exercise(c) in WRONG:
                c.source = WRONG[exercise(c)][0]
        nbs.append(nb)
    assert {p.name[:2] for p in LABS} == {e[:2] for e in WRONG}
    grades, _ = grade(combined(nbs))
    assert not grades.errors, grades.errors
    for c in grades.cells:
        if c.exercise in WRONG:
            assert c.points == 0, c.exercise
            assert WRONG[c.exercise][1] in c.feedback, (c.exercise, c.feedback)
            assert "Traceback" not in c.feedback
        else:
            assert c.points == c.max_points, (c.exercise, c.feedback)


def test_every_exercise_cell_parses_in_both_versions(instructor, student):
    for versions in (instructor, student):
        for path, nb in versions.items():
            for c in nb.cells:
                if role(c) and c.cell_type == "code":
                    ast.parse(c.source, filename=f"{path.name}: {exercise(c)}")
