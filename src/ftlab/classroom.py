"""A class on one server: the shared cache, each student's private runs, the instructor's view.

A class root (made by ``classroom/install.sh``, see docs/instructor.md) holds::

    venv/          the class's Python and ftlab (a copy, not an editable install): every
                   student can read and run it
    cache/         FTLAB_CACHE of everyone: the converted model and the base model's scores,
                   prepared once; owned by root, readable by all, writable by no student
    runs/<user>/   FTLAB_RUNS of one student: owned by them, mode 700 (2750 with the
                   instructors' group: instructors read, nobody else even lists it)
    notebooks/     the student version, copied into each student's home on first start
    hub/           JupyterHub's database, cookie secret and proxy pid file

The hub (``classroom/jupyterhub_config.py``) loads this file by path before a student's server
starts, without importing ftlab (so the hub never loads torch): the part above the instructor's
view uses the standard library only.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTRUCTORS_GROUP = "ftlab-instructors"  # if it exists, its members read every student's runs
NOTEBOOKS_IN_HOME = "ftlab"  # the folder of a student's own copy of the notebooks


@dataclass(frozen=True)
class ClassRoot:
    """Where one class's files live on the server."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).resolve())

    @property
    def venv(self) -> Path:
        return self.path / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cache(self) -> Path:
        return self.path / "cache"

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    @property
    def notebooks(self) -> Path:
        return self.path / "notebooks"

    @property
    def hub(self) -> Path:
        return self.path / "hub"

    def runs_of(self, user: str) -> Path:
        """The one student's runs folder (``FTLAB_RUNS`` of their server)."""
        if not user or "/" in user or user.startswith("."):
            raise ValueError(f"not a user name: {user!r}")
        return self.runs / user

    def student_environment(self, user: str) -> dict[str, str]:
        """What a student's server (and its kernels) must see: the shared read-only cache,
        their own runs folder, no model hub. No thread count is set: ftlab.threads fits
        each process to the cores the others leave free."""
        return {"FTLAB_CACHE": str(self.cache), "FTLAB_RUNS": str(self.runs_of(user)),
                "HF_HUB_OFFLINE": "1"}


# -- permissions -------------------------------------------------------------------------------
def seal(folder: Path) -> None:
    """Make a tree root's and read-only to everyone else: folders 755, files 644 (755 if
    executable). Students then read the cache but can neither add to it nor change it.
    Run by another user (a rehearsal), the tree stays theirs, with the same modes."""
    as_root = os.geteuid() == 0
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        if as_root:
            os.chown(path, 0, 0)
        mode = path.stat().st_mode
        os.chmod(path, 0o755 if path.is_dir() or mode & 0o100 else 0o644)


def make_runs_folder(root: ClassRoot, user: str) -> Path:
    """The student's runs folder, theirs alone (instructors' group: read-only).

    ``runs/`` itself is 711: a student reaches their own folder but cannot list the others'.
    Called as root before the student's server starts; idempotent, and it repairs modes."""
    root.runs.mkdir(parents=True, exist_ok=True)
    os.chmod(root.runs, 0o711)
    folder = root.runs_of(user)
    folder.mkdir(exist_ok=True)
    pw = pwd.getpwnam(user)
    try:
        gid, mode = grp.getgrnam(INSTRUCTORS_GROUP).gr_gid, 0o2750
    except KeyError:
        gid, mode = pw.pw_gid, 0o700
    os.chown(folder, pw.pw_uid, gid)
    os.chmod(folder, mode)
    return folder


def give_notebooks(root: ClassRoot, user: str) -> Path:
    """Copy the class notebooks into the student's home once (their edits are theirs), with
    a ``runs`` link to their runs folder beside them."""
    pw = pwd.getpwnam(user)
    target = Path(pw.pw_dir) / NOTEBOOKS_IN_HOME
    if not target.exists():
        if root.notebooks.is_dir():
            shutil.copytree(root.notebooks, target)
        else:
            target.mkdir(parents=True)
        link = target / "runs"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(root.runs_of(user))
        for path in [target, *target.rglob("*")]:
            os.lchown(path, pw.pw_uid, pw.pw_gid)
    return target


def prepare_student(root: ClassRoot, user: str) -> dict[str, str]:
    """Everything a student's server needs before it starts; returns its environment."""
    make_runs_folder(root, user)
    give_notebooks(root, user)
    return root.student_environment(user)


# -- the preparation step (run once, as root) --------------------------------------------------
def prepare_cache(root: ClassRoot, *, models: Sequence[str] = ("smollm2-135m", "tiny"),
                  from_cache: Path | None = None, scores: bool = True,
                  labs: Iterable[type] | None = None, seeds: Sequence[int] = (0, 1, 2),
                  **changes: Any) -> Path:
    """Fill the shared cache once (the converted model, the base model's scores), then seal it.

    ``from_cache``: copy already converted models from another ftlab cache instead of
    converting again (e.g. the ``~/.cache/ftlab`` that ``make install`` filled).
    ``labs``, ``seeds``, ``changes``: what ``score_base_models`` scores (default: the labs of
    the failure-mode notebooks as set, seeds 0, 1 and 2); e.g. ``model="tiny"`` for a
    rehearsal in seconds."""
    root.cache.mkdir(parents=True, exist_ok=True)
    if from_cache is not None:
        for name in ("smollm2-135m-instruct", "tiny-llama"):
            src = Path(from_cache) / name
            if src.is_dir() and not (root.cache / name).exists():
                shutil.copytree(src, root.cache / name)
    from . import models as m

    before = os.environ.get("FTLAB_CACHE")
    os.environ["FTLAB_CACHE"] = str(root.cache)  # read at call time by ftlab.models
    try:
        for spec in models:
            m.tiny_model_dir() if spec == m.TINY_MODEL else m.embedded_model_dir()
        if scores:
            score_base_models(lab_classes() if labs is None else labs, seeds, **changes)
    finally:
        if before is None:
            os.environ.pop("FTLAB_CACHE")
        else:
            os.environ["FTLAB_CACHE"] = before
    seal(root.cache)
    return root.cache


def lab_classes() -> list[type]:
    """The labs of the failure-mode notebooks, whose base-model scores every student needs."""
    from .labs.collapse import Collapse
    from .labs.format_mismatch import FormatMismatch
    from .labs.overfitting import Overfitting
    from .labs.regression import Regression

    return [Overfitting, FormatMismatch, Collapse, Regression]


def score_base_models(labs: Iterable[type], seeds: Sequence[int] = (0, 1, 2),
                      **changes: Any) -> int:
    """Score the unchanged model on what each lab's arms watch at step 0, into the cache
    (``evaluate.cache``), so no student computes the same "before" again. Returns how many
    arm-seed evaluations ran (most are then cache hits)."""
    from .engine import load_splits
    from .engine.callbacks import EvalContext, run_evaluators
    from .models import eval_mode, load_model

    loaded: dict[tuple, Any] = {}
    done = 0
    for cls in labs:
        lab = cls(**changes)
        for arm in lab.checked:
            for seed in seeds:
                cfg = lab.config(arm, seed).resolved()
                if not cfg.method.starts_as_base or not lab.watch:
                    continue
                key = (cfg.model, cfg.device, cfg.dtype)
                if key not in loaded:
                    loaded[key] = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
                model, tok = loaded[key]
                ctx = EvalContext(step=0, config=cfg, splits=load_splits(cfg), full=True)
                with eval_mode(model):
                    run_evaluators(lab.watch, model, tok, ctx)
                done += 1
    return done


# -- the instructor's view ---------------------------------------------------------------------
def students(root: ClassRoot) -> list[str]:
    """The students who have a runs folder, by name."""
    if not root.runs.is_dir():
        return []
    return sorted(p.name for p in root.runs.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_runs(root: ClassRoot) -> dict[str, list]:
    """Every readable run of every student (``ftlab.runs.list_runs`` per folder), read-only."""
    import warnings

    from .runs import list_runs

    out = {}
    for name in students(root):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged folders: left out (`ftlab runs` names them)
            out[name] = list_runs(root.runs_of(name))
    return out


def class_rows(root: ClassRoot, metric: str = "val_loss", k: float = 3.5) -> list[dict]:
    """One row per run, ``student`` first, with ``outlier`` set where the run is unusual."""
    from .runs import compare

    rows = [{"student": name, **row} for name, runs in class_runs(root).items()
            for row in compare(runs)]
    return flag_outliers(rows, metric, k)


def flag_outliers(rows: list[dict], metric: str = "val_loss", k: float = 3.5) -> list[dict]:
    """Mark each row's ``outlier``: a run that did not complete, or whose ``metric`` lies more
    than ``k`` robust deviations (MAD) from the median of the runs of the same config."""
    groups: dict[Any, list[float]] = {}
    for r in rows:
        if isinstance(r.get(metric), (int, float)):
            groups.setdefault(r.get("hash"), []).append(float(r[metric]))
    for r in rows:
        r["outlier"] = _outlier_reason(r, groups.get(r.get("hash"), []), metric, k)
    return rows


def _outlier_reason(row: dict, values: list[float], metric: str, k: float) -> str:
    if row.get("status") not in ("completed", "early_stopped"):
        return f"status {row.get('status')}"
    value = row.get(metric)
    if len(values) < 3 or not isinstance(value, (int, float)):
        return ""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values) or 1e-9
    return f"{metric} {value:.3g} vs median {median:.3g}" if abs(value - median) > k * mad else ""


def class_verdicts(root: ClassRoot, lab: Any, seeds: Sequence[int] | None = None) -> dict:
    """Each student's verdict on a lab, from the runs they made (``None``: not all there).

    The runs are found by the lab's own run-cache key, so a student who changed a knob has
    no verdict for the lab as set, which is itself worth asking about."""
    from .labs import LabResult
    from .runs import find_run

    seeds = list(lab.seeds if seeds is None else seeds)
    out = {}
    for name in students(root):
        result = LabResult(lab)
        for arm in lab.checked:
            for seed in seeds:
                run = find_run(lab.config(arm, seed), root.runs_of(name), lab.watch)
                if run is not None:
                    result.runs[(arm, seed)] = run
        complete = len(result.runs) == len(lab.checked) * len(seeds)
        out[name] = result.check() if complete else None
    return out


def verdict_rows(verdicts: dict) -> list[dict]:
    """The verdicts as table rows: student, verdict, seeds where the claim held."""
    return [{"student": name, "verdict": v.summary if v is not None else "runs missing",
             "holds_in": v.holds_in if v is not None else None}
            for name, v in verdicts.items()]


class ClassView:
    """Every student's runs in one table (outliers named), and the picked runs side by side
    in a ``CompareView``. Reads only; run it where the run folders are readable."""

    COLUMNS = ("student", "run", "method", "status", "steps", "train_loss", "val_loss",
               "best_val_loss", "wall_s", "outlier")

    def __init__(self, root: ClassRoot | str | Path) -> None:
        import ipywidgets as w

        from .widgets.compare import CompareView

        self.root = root if isinstance(root, ClassRoot) else ClassRoot(Path(root))
        self.table = w.HTML()
        self.compare = CompareView(runs_dir=self.root.runs / ".none")  # filled by select()
        refresh = w.Button(description="Refresh", icon="refresh",
                           tooltip="Read every student's run folders again.")
        refresh.on_click(lambda _b: self.refresh())
        self.widget = w.VBox([refresh, self.table, self.compare.widget])
        self.refresh()

    def refresh(self) -> None:
        from .widgets.compare import table_html

        self.rows = class_rows(self.root)
        self.table.value = table_html(self.rows, self.COLUMNS)

    def select(self, student_runs: Iterable[tuple[str, str]]) -> ClassView:
        """Put runs side by side: ``[(student, run name), ...]``."""
        self.compare.select([self.root.runs_of(s) / name for s, name in student_runs])
        return self

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)


# -- command line ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ftlab.classroom prepare|student|runs --root ROOT``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m ftlab.classroom",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, text in (("prepare", "fill and seal the shared cache (as root, once)"),
                       ("student", "prepare one student's folders (as root)"),
                       ("runs", "list every student's runs (instructor)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--root", default=os.environ.get("FTLAB_CLASS_ROOT", "/srv/ftlab-class"))
        s.add_argument("--json", action="store_true")
    sub.choices["prepare"].add_argument("--from-cache", type=Path,
                                        help="copy converted models from this ftlab cache")
    sub.choices["prepare"].add_argument("--no-scores", action="store_true",
                                        help="skip the base model's scores")
    sub.choices["student"].add_argument("user")
    args = p.parse_args(argv)
    root = ClassRoot(Path(args.root))
    if args.cmd == "prepare":
        out: Any = {"cache": str(prepare_cache(root, from_cache=args.from_cache,
                                               scores=not args.no_scores))}
    elif args.cmd == "student":
        out = prepare_student(root, args.user)
    else:
        out = class_rows(root)
    print(json.dumps(out, indent=None if args.json else 1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
