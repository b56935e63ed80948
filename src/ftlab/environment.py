"""Which library versions this kernel runs, against the ranges the course was tested with.

Libraries change numerics and behaviour between releases (transformers 5.24 makes
``generate()`` ignore trained prefix-tuning adapters), and a learner's kernel is often not the
one the course was installed into. ``check_environment()`` says, in one table, which versions
are loaded, whether each lies in the tested range, which device and dtype ftlab will pick, and
the one ``pip install`` line that brings everything back into range.

The ranges are not written here: they are the project's own dependency pins, read at run time
(``pyproject.toml`` of the source tree ftlab runs from, else the installed distribution's
metadata), so a changed pin changes this check with it.
"""

from __future__ import annotations

import html
import platform
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

# The one list of the packages whose versions matter: run folders record the training ones
# (``ftlab.runs.environment``), this check shows all of them.
TRAINING_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate")
NOTEBOOK_PACKAGES = ("ipywidgets", "plotly")
PACKAGES = TRAINING_PACKAGES + NOTEBOOK_PACKAGES
# Missing, these cost one feature, not the course: the check says so and stays ok.
OPTIONAL = {"bitsandbytes": "only QLoRA needs it"}

OK, OUTSIDE, MISSING, UNPINNED = "ok", "outside", "missing", "not pinned"
_LOWER_FIRST = {">": 0, ">=": 0, "~=": 0, "==": 0, "===": 0, "!=": 1, "<=": 2, "<": 2}


def _pins_from_pyproject(path: Path) -> tuple[list[str], str | None] | None:
    """The dependency pins of ftlab's own pyproject.toml, or None where it is not ftlab's
    (or Python < 3.11 has no tomllib): a source tree is newer than its installed metadata."""
    try:
        import tomllib
    except ImportError:
        return None
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):
        return None
    if project.get("name") != "ftlab":
        return None
    return list(project.get("dependencies", [])), project.get("requires-python")


def tested_pins() -> tuple[dict[str, SpecifierSet], str, str | None]:
    """``({package: range}, where they were read, the Python range)`` from the project's pins:
    the source tree's pyproject.toml when ftlab runs from one, else the installed metadata."""
    source = Path(__file__).resolve().parents[2] / "pyproject.toml"
    found = _pins_from_pyproject(source) if source.is_file() else None
    if found is not None:
        lines, python, origin = *found, str(source)
    else:
        try:
            lines = metadata.requires("ftlab") or []
            python = metadata.metadata("ftlab").get("Requires-Python")
        except metadata.PackageNotFoundError:
            lines, python = [], None
        origin = "the installed ftlab's metadata"
    pins: dict[str, SpecifierSet] = {}
    for line in lines:
        try:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra (test, lab, class): not what the course runs on
        except (InvalidRequirement, UndefinedEnvironmentName):
            continue
        pins[req.name.lower()] = req.specifier
    return pins, origin, python


def installed_version(name: str) -> str | None:
    """The installed version of a distribution, or None: the lookup a test replaces."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _range_text(spec: SpecifierSet) -> str:
    """``>=5.19,<5.24``: lower bound first, as people write it (str() sorts ``<`` first)."""
    parts = sorted(spec, key=lambda s: (_LOWER_FIRST.get(s.operator, 1), s.version))
    return ",".join(str(s) for s in parts) or "any"


@dataclass(frozen=True)
class PackageCheck:
    """One row: a package, its installed version, the tested range and the verdict."""

    name: str
    installed: str | None
    tested: str
    status: str  # ok, outside, missing, not pinned
    note: str = ""

    @property
    def requirement(self) -> str:
        """What ``pip install`` takes to bring this package into the tested range."""
        return self.name if self.tested == "any" else f"{self.name}{self.tested}"


def _judge(name: str, installed: str | None, spec: SpecifierSet | None) -> PackageCheck:
    tested = "-" if spec is None else _range_text(spec)
    if installed is None:
        return PackageCheck(name, None, tested, MISSING, OPTIONAL.get(name, "needed"))
    if spec is None:
        return PackageCheck(name, installed, tested, UNPINNED)
    try:
        inside = spec.contains(Version(installed), prereleases=True)
    except InvalidVersion:
        return PackageCheck(name, installed, tested, OUTSIDE, "not a version number")
    return PackageCheck(name, installed, tested, OK if inside else OUTSIDE)


@dataclass(frozen=True)
class EnvironmentReport:
    """What ``check_environment`` found: print it, or show it in a notebook (a table)."""

    python: PackageCheck
    packages: tuple[PackageCheck, ...]
    device: str
    dtype: str
    threads: int | None
    pins_from: str
    dtype_reason: str = ""  # why that dtype (``Placement.reason``)

    @property
    def problems(self) -> list[PackageCheck]:
        """Rows that need action: outside the range, or missing and not optional."""
        return [p for p in (self.python, *self.packages)
                if p.status == OUTSIDE or (p.status == MISSING and p.name not in OPTIONAL)]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def fix(self) -> str | None:
        """What to do, in one or two sentences, or None when nothing is needed."""
        if self.ok:
            return None
        parts = []
        if self.python.status == OUTSIDE:
            parts.append(f"This course needs Python {self.python.tested}; you run "
                         f"{self.python.installed}: start Jupyter from such a Python.")
        reqs = " ".join(f"'{p.requirement}'" for p in self.problems if p is not self.python)
        if reqs:
            parts.append(f"Install the tested versions: `pip install {reqs}` in a terminal "
                         f"(or `%pip install {reqs}` in a notebook cell), then restart the "
                         "kernel (Kernel > Restart Kernel) so that it loads them.")
        return " ".join(parts)

    def to_dict(self) -> dict:
        rows = [asdict(p) for p in (self.python, *self.packages)]
        return {"ok": self.ok, "packages": rows, "device": self.device, "dtype": self.dtype,
                "dtype_reason": self.dtype_reason, "threads": self.threads,
                "pins_from": self.pins_from, "fix": self.fix}

    def __str__(self) -> str:
        rows = [("package", "installed", "tested range", "status")]
        for p in (self.python, *self.packages):
            status = f"{p.status} ({p.note})" if p.note else p.status
            rows.append((p.name, p.installed or "-", p.tested, status))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3] for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
        lines.append("")
        lines.append(f"device {self.device}, dtype {self.dtype} (what device='auto' picks); "
                     f"torch threads {self.threads if self.threads is not None else '-'}")
        if self.dtype_reason:
            lines.append(f"why this dtype: {self.dtype_reason}")
        lines.append(f"tested ranges from {self.pins_from}")
        lines.append("all versions are in the tested ranges" if self.ok
                     else f"not as tested: {self.fix}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {OK: "#1a7f37", OUTSIDE: "#cf222e", MISSING: "#9a6700", UNPINNED: "#57606a"}
        e = html.escape
        cells = "".join(
            f"<tr><td><code>{e(p.name)}</code></td><td>{e(p.installed or '-')}</td>"
            f"<td><code>{e(p.tested)}</code></td><td style='color:{colour[p.status]}'>"
            f"<b>{e(p.status)}</b>{' (' + e(p.note) + ')' if p.note else ''}</td></tr>"
            for p in (self.python, *self.packages))
        threads = self.threads if self.threads is not None else "-"
        verdict = ("<p style='color:#1a7f37'>All versions are in the tested ranges.</p>"
                   if self.ok else f"<p style='color:#cf222e'><b>Not as tested.</b> "
                   f"{e(self.fix or '')}</p>")
        return ("<table><thead><tr><th>package</th><th>installed</th><th>tested range</th>"
                f"<th>status</th></tr></thead><tbody>{cells}</tbody></table>"
                f"<p>device <code>{e(self.device)}</code>, dtype <code>{e(self.dtype)}</code> "
                f"(what <code>device='auto'</code> picks: {e(self.dtype_reason or '-')}); "
                f"torch threads {threads}</p>{verdict}")


def _placement() -> tuple[str, str, int | None, str]:
    """Device, dtype, torch's thread count and why that dtype, or why torch could not say."""
    try:
        import torch

        from .models import choose_placement

        placement = choose_placement("auto")
        return (placement.device, placement.dtype_name, torch.get_num_threads(),
                placement.reason)
    except Exception as e:  # noqa: BLE001 - a broken torch is what this check must report
        return f"unknown ({type(e).__name__}: {e})", "-", None, ""


def check_environment(versions: Mapping[str, str | None] | None = None,
                      packages: Iterable[str] = PACKAGES) -> EnvironmentReport:
    """Check the versions that matter against the tested ranges; the report prints a table.

    ``versions`` replaces what is installed (``{"transformers": "5.24.0"}``; None: not
    installed; ``"python"`` for the interpreter): how the tests see a version outside the
    range without installing it.
    """
    given = dict(versions or {})
    pins, origin, python_range = tested_pins()
    python = given.get("python", platform.python_version())
    rows = []
    for name in packages:
        installed = given[name] if name in given else installed_version(name)
        rows.append(_judge(name, installed, pins.get(name.lower())))
    device, dtype, threads, reason = _placement()
    return EnvironmentReport(
        python=_judge("python", python, SpecifierSet(python_range) if python_range else None),
        packages=tuple(rows), device=device, dtype=dtype, threads=threads, pins_from=origin,
        dtype_reason=reason)
