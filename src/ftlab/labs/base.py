"""The base every lab stands on: presets, arms, watched evaluators and the lesson as code.

A lab module declares what differs (d2l's shared bases, PEFT's configs as data):

- ``base``: the ``RunConfig`` every arm starts from (sizes left to the preset);
- ``presets``: per preset (``cpu``, ``gpu``) a ``Preset``: the changes to ``base``, the
  arms (named changes, e.g. ``{"healthy": {...}, "broken": {...}}``), which arms the check
  reads on every seed (``checked``), which are measured on the first seed only (``extra``),
  and the evaluators watched during and after training (``watch``, namespaced metrics);
- ``knobs`` and ``metrics``: what its panel shows;
- ``measure`` and ``conditions``: the lesson as code, on one seed's runs.

``Lab(**changes)`` resolves the preset once (from the changes, else the base config: a GPU
machine gets ``gpu``), then builds every arm as base, preset, arm and the caller's changes,
in that order: a change given to the lab wins under any spelling (``lr``,
``train.learning_rate``, ...). ``lab.run(arm, seed)`` and ``lab.sweep(seeds)`` train or load
from the run cache; ``result.check()`` returns a ``Verdict`` that a notebook prints and
asserts. Figures and HTML tables live apart (``show_<lab>.py``), all tables written by
``rows_html``. ``number_names`` gives each measured number the words a learner reads in the
verdict (``Lab.number_label``); the name in code stays beside them.

A preset carries its ``Calibration`` (``ftlab.labs.calibration``: where, when, the numbers per
seed, the wall time) or ``None``: never measured. ``preset="auto"`` that resolves to an
uncalibrated preset runs the calibrated one instead (``Lab.notice`` says so); an uncalibrated
preset named explicitly runs, and its verdict is labelled "not calibrated" and not asserted.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from ..config import RunConfig
from ..engine import Evaluator, train
from ..errors import ConfigError
from ..runs import Run
from .calibration import Calibration


# -- the one table writer ---------------------------------------------------------------
class Html(str):
    """Text that is already HTML: ``rows_html`` puts it in its cell as it is."""


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


def cell_html(v: Any) -> str:
    """One value as a table cell: ``Html`` as it is, the rest as text (floats to 3
    decimals, booleans yes/NO), escaped."""
    return v if isinstance(v, Html) else html.escape(_fmt(v))


def rows_html(rows: Sequence[Mapping[str, Any]], cell: Callable[[Any], str] = cell_html, *,
              columns: Sequence[str] | None = None,
              style: str | Mapping[str, str] = "text-align:right",
              head_style: str = "") -> str:
    """Rows (one dict each, columns from the first unless given) as an HTML table.

    ``cell`` formats one value as HTML (each lab formats its own numbers); ``style`` is each
    cell's CSS, one for every column or by column name (a column not named: right-aligned;
    ``""``: none); ``head_style`` the header cells'."""
    cols = list(columns if columns is not None else rows[0] if rows else [])
    css = {c: style if isinstance(style, str) else style.get(c, "text-align:right")
           for c in cols}
    th = f"<th style='{head_style}'>" if head_style else "<th>"
    head = "".join(f"{th}{html.escape(c)}</th>" for c in cols)
    td = {c: f"<td style='{css[c]}'>" if css[c] else "<td>" for c in cols}
    body = "".join("<tr>" + "".join(f"{td[c]}{cell(r.get(c))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- the verdict ---------------------------------------------------------------------------
@dataclass
class Verdict:
    """The lesson's claim, the numbers per seed, pass/fail per seed, and overall.

    Shown condition by condition, one column per seed, so the pass/fail a learner reads fits
    any screen; ``read`` (the numbers the conditions read) follows them, and every number
    measured sits in a collapsed section below. Numbers show by the words in ``labels``
    (``Lab.number_label``: what the course calls them), their names in code beside them."""

    claim: str
    rows: list[dict]  # one per seed: {"seed", <number>..., <condition>: bool, "holds": bool}
    conditions: list[str]
    required: int  # seeds in which the claim must hold
    read: list[str] = field(default_factory=list)  # numbers the conditions read, in order
    labels: dict[str, str] = field(default_factory=dict)  # number -> words (``Lab.number_label``)
    preset: str = ""  # the preset the runs used ("": not said)
    calibration: Calibration | None = None  # where and when this preset's check was measured
    # True: the preset was never calibrated (its margins never measured at its scale): the
    # verdict is labelled, its numbers shown beside ``compare_with``'s, and never asserted
    uncalibrated: bool = False
    compare_with: tuple[str, Calibration] | None = None  # (preset, its calibration)

    @property
    def holds_in(self) -> int:
        return sum(r["holds"] for r in self.rows)

    @property
    def passed(self) -> bool:
        """The claim held in the seeds required; over no seed at all it never holds (a
        lesson that was not run has shown nothing)."""
        return bool(self.rows) and self.holds_in >= self.required

    def __bool__(self) -> bool:
        return self.passed

    @property
    def summary(self) -> str:
        if not self.rows:
            return "NOT CHECKED: no seed was measured (a claim holds only on measured runs)"
        return self._tally + ("; not calibrated, so not asserted" if self.uncalibrated else "")

    @property
    def _tally(self) -> str:
        word = "HOLDS" if self.passed else "DOES NOT HOLD"
        return f"{word}: in {self.holds_in} of {len(self.rows)} seeds (required {self.required})"

    # -- calibration ----------------------------------------------------------------------
    @property
    def uncalibrated_note(self) -> str:
        """The label of a verdict on an uncalibrated preset ("" on any other)."""
        if not self.uncalibrated:
            return ""
        preset = repr(self.preset) if self.preset else "this preset"
        out = (f"Not calibrated: your numbers are new. Preset {preset} was never measured, so "
               "its check is shown, not asserted")
        if self.compare_with is None:
            return out + "."
        name, cal = self.compare_with
        wall = f"; {cal.wall}" if cal.wall else ""
        return (out + f"; compare with the calibrated {name!r} preset ({cal.describe()}{wall})"
                ", per seed:")

    @property
    def compare_names(self) -> list[str]:
        """The calibrated numbers shown beside an uncalibrated verdict: those the conditions
        read that the calibration recorded, else every number it recorded."""
        if not self.uncalibrated or self.compare_with is None:
            return []
        recorded = self.compare_with[1].names
        shown = [n for n in (self.read or self.numbers) if n in recorded]
        return shown or recorded

    def _compare_lines(self) -> list[str]:
        if not self.compare_names:
            return []
        cal = self.compare_with[1]
        head = "  seeds " + " | ".join(map(str, cal.seeds)) + ":"
        return [head, *(f"  {self._named(n)}: " + " | ".join(_fmt(cal.value(s, n))
                                                           for s in cal.seeds)
                        for n in self.compare_names)]

    @property
    def calibrated_note(self) -> str:
        """Where and when a calibrated preset's check was measured ("" without a record)."""
        if self.uncalibrated or self.calibration is None:
            return ""
        preset = f"preset {self.preset!r}, " if self.preset else ""
        return f"calibrated: {preset}measured on {self.calibration.describe()}"

    @property
    def numbers(self) -> list[str]:
        """Every number measured per seed (not a condition, the seed or the verdict)."""
        skip = {"seed", "holds", *self.conditions}
        return [k for k in (self.rows[0] if self.rows else {}) if k not in skip]

    def _per_seed(self, name: str) -> dict[str, Any]:
        return {f"seed {r['seed']}": r.get(name) for r in self.rows}

    def by_seed(self, names: Sequence[str], head: str) -> list[dict]:
        """``names`` as rows, one column per seed: ``[{head: name, "seed 0": value, ...}]``."""
        return [{head: name, **self._per_seed(name)} for name in names]

    def label(self, name: str) -> str:
        """The words a learner reads for a number (its name in code when none are declared)."""
        return self.labels.get(name, name)

    def _named(self, name: str) -> str:
        """A number's words, then its name in code in brackets (plain text, for ``str``)."""
        words = self.label(name)
        return name if words == name else f"{words} ({name})"

    def _named_html(self, name: str) -> Html | str:
        """A number's words as a cell, its name in code as the hover title."""
        words = self.label(name)
        if words == name:
            return name
        return Html(f"<span title='{html.escape(name, quote=True)}'>"
                    f"{html.escape(words)}</span>")

    def __str__(self) -> str:
        def lines(names: Sequence[str], show=str) -> list[str]:
            return [f"  {show(name)}: " + " | ".join(_fmt(r.get(name)) for r in self.rows)
                    for name in names]

        seeds = " | ".join(f"seed {r['seed']}" for r in self.rows)
        label = [self.uncalibrated_note, *self._compare_lines()] if self.uncalibrated else []
        tail = [self.calibrated_note] if self.calibrated_note else []
        return "\n".join([self.claim, *label, f"conditions ({seeds}):",
                          *lines([*self.conditions, "holds"]), "numbers:",
                          *lines(self.read or self.numbers, self._named), self.summary, *tail])

    def _repr_html_(self) -> str:
        color = "#9a6700" if self.uncalibrated else "#1a7f37" if self.passed else "#b00020"
        left = {"condition": "text-align:left", "number": "text-align:left",
                "name in code": "text-align:left"}
        short = (self.by_seed([*self.conditions, "holds"], "condition")
                 + [{"condition": self._named_html(n), **self._per_seed(n)} for n in self.read])
        full = rows_html([{"number": self.label(n),
                           "name in code": Html(f"<code>{html.escape(n)}</code>"),
                           **self._per_seed(n)} for n in self.numbers], style=left)
        label = ""
        if self.uncalibrated:
            head, colon, rest = self.uncalibrated_note.partition(":")
            label = (f"<p style='color:#9a6700'><b>{html.escape(head + colon)}</b>"
                     f"{html.escape(rest)}</p>")
            if self.compare_names:
                cal = self.compare_with[1]
                label += rows_html([{"calibrated number": self._named_html(n),
                                     **{f"seed {s}": cal.value(s, n) for s in cal.seeds}}
                                    for n in self.compare_names],
                                   style={"calibrated number": "text-align:left"})
        elif self.calibrated_note:
            label = f"<p style='color:#555'>{html.escape(self.calibrated_note)}</p>"
        return (f"<p><b>Claim.</b> {html.escape(self.claim)}</p>{label}"
                f"<p style='color:{color}'><b>{html.escape(self.summary)}</b></p>"
                + rows_html(short, _verdict_cell, style=left)
                + f"<details><summary>All {len(self.numbers)} numbers measured, per seed"
                  f"</summary>{full}</details>")

    def assert_holds(self) -> Verdict:
        """Raise AssertionError with the whole table if the claim does not hold.

        On an uncalibrated preset (``uncalibrated``) nothing is asserted: its margins were
        set on another scale, so a miss there is a finding, not a failure. It prints one line
        saying so (``print(verdict)`` shows the numbers beside the calibrated ones) and
        returns; ``passed`` still says whether the claim held. A verdict over no seed is
        refused on any preset: nothing was measured, so there is nothing to compare."""
        if self.uncalibrated and self.rows:
            preset = repr(self.preset) if self.preset else "this preset"
            ref = (f" with the calibrated {self.compare_with[0]!r} preset's"
                   if self.compare_with else "")
            print(f"Not asserted: preset {preset} is not calibrated ({self._tally}). Your numbers "
                  f"are new: compare them{ref}, shown with the verdict.")
            return self
        if not self.passed:
            raise AssertionError(str(self))
        return self


def _verdict_cell(v: Any) -> str:
    """A condition's outcome coloured (yes green, NO red); anything else as ``cell_html``."""
    if isinstance(v, bool):
        return f"<b style='color:{'#1a7f37' if v else '#b00020'}'>{_fmt(v)}</b>"
    return cell_html(v)


@dataclass
class LabResult:
    """The runs of a sweep, by ``(arm, seed)``, and the lesson checked on them."""

    lab: Lab
    runs: dict[tuple[str, int], Run] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def seeds(self) -> list[int]:
        return sorted({s for _, s in self.runs})

    @property
    def trained(self) -> int:
        """How many runs were trained now (the rest came from the cache)."""
        return sum(not r.from_cache for r in self.runs.values())

    def by_seed(self, seed: int) -> dict[str, Run]:
        return {arm: r for (arm, s), r in self.runs.items() if s == seed}

    def numbers(self) -> list[dict]:
        """``lab.measure`` for every seed: what the check and the figures read."""
        out = []
        for s in self.seeds:
            try:
                out.append({"seed": s, **self.lab.measure(self.by_seed(s))})
            except KeyError:  # a measure that reads an arm this sweep lacks: say which
                self.require_arms()
                raise
        return out

    def missing_arms(self) -> dict[int, list[str]]:
        """Per seed swept, the arms the lab's check needs (``Lab.needed_arms``) that this
        result lacks; empty when every seed has them all."""
        needed = self.lab.needed_arms
        have = {s: set(self.by_seed(s)) for s in self.seeds}
        return {s: [a for a in needed if a not in arms] for s, arms in have.items()
                if any(a not in arms for a in needed)}

    def require_arms(self) -> None:
        """Refuse, before any number is read, a result the check cannot be run on: no seed
        at all, or a seed without an arm the check reads (``ConfigError`` naming the arms
        missing and the sweep that runs them)."""
        name = type(self.lab).__name__
        if not self.runs:
            raise ConfigError("seeds", [], "at least one seed swept",
                              f"A lesson holds only on runs that were measured: "
                              f"lab.sweep() runs {name}'s seeds {list(self.lab.seeds)}.")
        missing = self.missing_arms()
        if not missing:
            return
        needed = list(self.lab.needed_arms)
        lacks = "; ".join(f"seed {s} lacks {', '.join(map(repr, arms))}"
                          for s, arms in missing.items())
        seeds = sorted(missing)
        present = sorted({a for a, s in self.runs if s in missing})
        raise ConfigError("arms", present,
                          f"every arm {name}'s check reads, on every seed: "
                          + ", ".join(map(repr, needed)) + f" ({lacks})",
                          f"Sweep them: lab.sweep(seeds={seeds}) runs every checked arm, or "
                          f"lab.sweep(seeds={seeds}, arms={needed}).")

    def check(self) -> Verdict:
        """The lesson on every seed swept; a sweep it cannot be checked on is refused first
        (``require_arms``)."""
        self.require_arms()
        rows, names, read, labels = [], [], {}, {}
        for m in self.numbers():
            seen = _Reads(m)
            conds = self.lab.conditions(seen)
            names = list(conds)
            read.update(dict.fromkeys(seen.read))
            labels.update({k: self.lab.number_label(k) for k in m if k != "seed"})
            rows.append({**m, **conds, "holds": all(conds.values())})
        required = self.lab.required_seeds or len(self.seeds)
        lab = self.lab
        compare_with = getattr(lab, "compare_with", None)
        if compare_with is not None:  # the calibrated numbers shown beside these, in words
            labels.update({k: lab.number_label(k) for k in compare_with[1].names
                           if k not in labels})
        return Verdict(lab.claim, rows, names, min(required, len(self.seeds)),
                       read=list(read), labels=labels, preset=getattr(lab, "preset", "") or "",
                       calibration=getattr(lab, "calibration", None),
                       uncalibrated=getattr(lab, "uncalibrated", False),
                       compare_with=compare_with)


class _Reads(dict):
    """One seed's numbers that note which of them the conditions read (the verdict shows
    those beside the conditions, the rest folded away)."""

    def __init__(self, numbers: Mapping[str, Any]) -> None:
        super().__init__(numbers)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self.read.append(key)
        return super().get(key, default)


# -- the lab ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """What a lab runs on one preset: the changes to its ``base`` (sizes), its arms (named
    changes on top), the arms its check reads on every seed (``checked``; ``None``: every
    arm not ``extra``), the arms measured on the first seed only (``extra``), the
    evaluators it watches (``watch``) and where and when its check was measured
    (``calibration``; ``None``: never, see ``ftlab.labs.calibration``)."""

    base: Mapping[str, Any] = field(default_factory=dict)
    arms: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    checked: tuple[str, ...] | None = None
    extra: tuple[str, ...] = ()
    watch: Mapping[str, Evaluator] = field(default_factory=dict)
    calibration: Calibration | None = None


class Lab:
    """Subclass and declare; see the module docstring.

    A lab without ``presets`` uses its ``arms`` and ``watch`` on every preset."""

    title: ClassVar[str] = ""
    claim: ClassVar[str] = ""
    base: ClassVar[RunConfig] = RunConfig()
    presets: ClassVar[Mapping[str, Preset]] = {}
    arms: dict[str, dict[str, Any]] = {}  # without presets: the arms of every preset
    watch: dict[str, Evaluator] = {}  # without presets: the evaluators of every preset
    knobs: ClassVar[Sequence[str] | Mapping[str, Any]] = ("lr", "steps", "size")
    metrics: ClassVar[Mapping[str, Sequence[str]] | None] = None
    seeds: ClassVar[tuple[int, ...]] = (0, 1, 2)
    required_seeds: ClassVar[int | None] = None  # None: every seed swept
    sweep_more: ClassVar[bool] = True  # ``sweep()`` runs the extra arms unless more=False
    # The arms the check cannot do without, on every seed (``None``: the preset's checked
    # arms); ``LabResult.check`` refuses a sweep that lacks one, naming it.
    needs: ClassVar[Sequence[str] | None] = None
    # The words a learner reads for a measured number, by its name without the arm prefix
    # (``"drop_ci_low"`` names every ``"<arm>.drop_ci_low"``) or by its full name (one
    # without an arm prefix, or one arm's number worded apart): see ``number_label``.
    number_names: ClassVar[Mapping[str, str]] = {}

    def __init__(self, runs_dir: str | Path | None = None, **changes: Any) -> None:
        """``changes`` apply to every arm, after the preset's and the arm's own (e.g.
        ``preset="gpu"``, ``model="tiny"``, ``lr=1e-4``).

        ``preset="auto"`` (the default) that resolves to a preset without a calibration, when
        another preset has one, runs that calibrated preset instead (the same arms and
        check; a GPU only runs it faster) and prints ``notice`` once. An explicit preset
        always runs; an uncalibrated one gives verdicts labelled "not calibrated"."""
        cls = type(self)
        self.runs_dir = runs_dir
        self.changes = dict(changes)
        self.notice: str | None = None  # why this lab runs another preset than ``auto`` gave
        self.calibration: Calibration | None = None  # the preset's, if it was measured
        self.uncalibrated = False  # the preset was never measured, and another one was
        self.compare_with: tuple[str, Calibration] | None = None  # that one, to compare with
        self._pinned: str | None = None  # the preset every arm runs, in place of ``auto``
        start = cls.base.replace(**changes) if changes else cls.base  # names checked here
        if cls.presets:
            self.preset = start.resolved().preset
            if self.preset not in cls.presets:
                raise ConfigError("preset", self.preset,
                                  "one of " + ", ".join(map(repr, cls.presets)),
                                  f"The presets of {cls.__name__}.")
            calibrated = cls.calibrated_presets()
            if (start.preset == "auto" and cls.presets[self.preset].calibration is None
                    and calibrated):
                auto, self.preset = self.preset, next(iter(calibrated))
                self._pinned = self.preset
                self.notice = (
                    f"{cls.__name__}: this machine's preset, {auto!r}, is not calibrated, so "
                    f"the lab runs its calibrated {self.preset!r} experiment (measured on "
                    f"{calibrated[self.preset].describe()}; on a GPU it only runs faster) "
                    f"and checks that. {cls.__name__}(preset={auto!r}) runs the "
                    "classroom-scale experiment, labelled 'not calibrated' and not asserted.")
            p = cls.presets[self.preset]
            self.config_base = cls.base.replace(**p.base).replace(**changes)
            if self._pinned:
                self.config_base = self.config_base.replace(preset=self._pinned)
            self.calibration = p.calibration
            if p.calibration is None and calibrated:
                self.uncalibrated = True
                self.compare_with = next(iter(calibrated.items()))
        else:
            start.validate()  # no arm may be built below: a bad preset or knob shows now
            self.preset = start.preset
            p = Preset(arms=cls.arms, watch=cls.watch)
            self.config_base = start
        self.arms = {arm: dict(c) for arm, c in p.arms.items()}
        self.extra = tuple(p.extra)
        self.checked = (tuple(p.checked) if p.checked is not None
                        else tuple(a for a in self.arms if a not in self.extra))
        self.watch = dict(p.watch)
        for arm in self.arms:  # a change that fits no arm is an error now, not at run time
            self.config(arm)
        if self.notice:
            print(self.notice)

    @classmethod
    def calibrated_presets(cls) -> dict[str, Calibration]:
        """The presets whose check was measured, with their calibration, in declared order."""
        return {name: p.calibration for name, p in cls.presets.items()
                if p.calibration is not None}

    @property
    def needed_arms(self) -> tuple[str, ...]:
        """The arms ``check`` reads on every seed: ``needs``, else the checked arms."""
        needs = type(self).needs
        return tuple(self.checked if needs is None else needs)

    # -- configs ------------------------------------------------------------------------
    def config(self, arm: str, seed: int = 0, **changes: Any) -> RunConfig:
        """The config of one arm and seed (validated): base, preset, arm, the lab's changes,
        then ``changes``."""
        if arm not in self.arms:
            raise ConfigError("arm", arm, "one of " + ", ".join(map(repr, self.arms)),
                              f"The arms of {type(self).__name__}.")
        cfg = self.config_base.replace(**self.arms[arm])
        if self.changes:
            cfg = cfg.replace(**self.changes)
        if self._pinned:  # ``auto`` gave an uncalibrated preset: the calibrated one runs
            cfg = cfg.replace(preset=self._pinned)
        cfg = cfg.replace(seed=seed, **changes)
        cfg.validate()
        return cfg

    # -- running ------------------------------------------------------------------------
    def run(self, arm: str, seed: int = 0, *, refresh: bool = False, on_event=None,
            progress: bool = True, **changes: Any) -> Run:
        """One arm and seed: loaded from the run cache when it exists (``refresh``: train)."""
        return train(self.config(arm, seed, **changes), evaluators=self.watch,
                     on_event=on_event, runs_dir=self.runs_dir, progress=progress,
                     reuse=not refresh)

    def sweep(self, seeds: Sequence[int] | None = None, arms: Sequence[str] | None = None,
              *, more: bool | None = None, refresh: bool = False,
              progress: bool = True) -> LabResult:
        """The checked arms over every seed and, with ``more`` (default: the lab's
        ``sweep_more``), the extra arms on the first seed; ``arms``: those arms over every
        seed instead. Cached runs are loaded, not trained."""
        seeds = self._seed_list(seeds)
        if arms is not None:
            arms = [arms] if isinstance(arms, str) else list(arms)
            if not arms:
                raise ConfigError("arms", arms, "at least one arm: "
                                  + ", ".join(map(repr, self.arms)),
                                  "Leave arms out to sweep the arms the check reads.")
            jobs = [(a, s) for s in seeds for a in arms]
        else:
            jobs = [(a, s) for s in seeds for a in self.checked]
            if (self.sweep_more if more is None else more) and seeds:
                jobs += [(a, seeds[0]) for a in self.extra]
        for arm, seed in jobs:  # every arm and seed checked before the first run trains
            self.config(arm, seed)
        result, t0 = LabResult(self), time.perf_counter()
        n_arms = len({a for a, _ in jobs})
        for arm, seed in tqdm(jobs, desc=f"{type(self).__name__}: {n_arms} arms, "
                              f"{len(seeds)} seeds", unit="run", disable=not progress):
            result.runs[(arm, seed)] = self.run(arm, seed, refresh=refresh, progress=False)
        result.wall_s = time.perf_counter() - t0
        return result

    def _seed_list(self, seeds: Any) -> list[int]:
        """``sweep``'s seeds as a list: at least one, none twice. A bare number is refused:
        ``seeds=3`` could mean seed 3 or three seeds, and a wrong guess trains the wrong runs."""
        if seeds is None:
            return list(self.seeds)
        example = f"e.g. seeds={list(self.seeds)}"
        if isinstance(seeds, (int, float, str, bytes)) or not isinstance(seeds, Iterable):
            whole = isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 0
            fix = f"For seed {seeds} alone: seeds=[{seeds}]" if whole else ""
            if whole and seeds > 0:
                fix += f"; for {seeds} seeds: seeds=range({seeds})"
            fix += "." if fix else ""
            raise ConfigError("seeds", seeds, f"a list of seeds ({example})", fix)
        out = list(seeds)
        if not out:
            raise ConfigError("seeds", out, f"at least one seed ({example})",
                              "A lesson holds only on runs that were measured; leave seeds "
                              f"out to sweep {type(self).__name__}'s own.")
        twice = sorted({s for s in out if out.count(s) > 1}, key=out.index)
        if twice:
            raise ConfigError("seeds", out, "each seed once",
                              f"Seed {', '.join(map(repr, twice))} is given twice.")
        return out

    def panel(self, arm: str | None = None, seed: int = 0, **kwargs: Any):
        """The lab's control panel, starting from an arm (default: the first)."""
        from ..widgets import ControlPanel

        kwargs.setdefault("title", self.title)
        return ControlPanel(self.config(arm or next(iter(self.arms)), seed), knobs=self.knobs,
                            metrics=self.metrics, evaluators=self.watch,
                            runs_dir=self.runs_dir, **kwargs)

    # -- the lesson ---------------------------------------------------------------------
    def number_label(self, name: str) -> str:
        """What a learner reads for the measured number ``name``: its full name's entry in
        ``number_names``, else for ``"<arm>.<rest>"`` (``<arm>`` one of this lab's arms)
        ``"<arm>: <words for rest>"``, else ``name`` itself (nothing declared)."""
        names = type(self).number_names
        if name in names:
            return names[name]
        arm, dot, rest = name.partition(".")
        if dot and arm in self.arms and rest in names:
            return f"{arm}: {names[rest]}"
        return name

    def measure(self, runs: dict[str, Run]) -> dict[str, float]:
        """The numbers of one seed's runs (by arm) that the claim is about."""
        raise NotImplementedError

    def conditions(self, numbers: dict[str, float]) -> dict[str, bool]:
        """The claim as named conditions on one seed's numbers; it holds if all do."""
        raise NotImplementedError
