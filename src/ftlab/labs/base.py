"""The base every lab stands on: knobs, arms, watched evaluators and the lesson as code.

A lab module declares what differs (d2l's shared bases, PEFT's configs as data):

- ``base``: the ``RunConfig`` every arm starts from (sizes left to the preset);
- ``arms``: named changes to it, e.g. ``{"healthy": {...}, "broken": {...}}``;
- ``watch``: the evaluators measured during and after training (namespaced metrics);
- ``knobs`` and ``metrics``: what its panel shows;
- ``measure`` and ``conditions``: the lesson as code, on one seed's runs.

``lab.run(arm, seed)`` and ``lab.sweep(seeds)`` train or load from the run cache;
``result.check()`` returns a ``Verdict`` that a notebook prints and asserts.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from ..config import RunConfig
from ..errors import ConfigError
from ..runs import Run
from ..train import Evaluator, train


@dataclass
class Verdict:
    """The lesson's claim, the numbers per seed, pass/fail per seed, and overall."""

    claim: str
    rows: list[dict]  # one per seed: {"seed", <number>..., <condition>: bool, "holds": bool}
    conditions: list[str]
    required: int  # seeds in which the claim must hold

    @property
    def holds_in(self) -> int:
        return sum(r["holds"] for r in self.rows)

    @property
    def passed(self) -> bool:
        return self.holds_in >= self.required

    def __bool__(self) -> bool:
        return self.passed

    @property
    def summary(self) -> str:
        word = "HOLDS" if self.passed else "DOES NOT HOLD"
        return (f"{word}: in {self.holds_in} of {len(self.rows)} seeds "
                f"(required {self.required})")

    def _columns(self) -> list[str]:
        cols = [k for k in self.rows[0] if k not in ("holds",)] if self.rows else []
        return cols + ["holds"]

    def __str__(self) -> str:
        cols = self._columns()
        lines = [self.claim, " | ".join(cols)]
        lines += [" | ".join(_fmt(r.get(c)) for c in cols) for r in self.rows]
        return "\n".join([*lines, self.summary])

    def _repr_html_(self) -> str:
        cols = self._columns()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(
            f"<td style='text-align:right'>{html.escape(_fmt(r.get(c)))}</td>" for c in cols)
            + "</tr>" for r in self.rows)
        color = "#1a7f37" if self.passed else "#b00020"
        return (f"<p><b>Claim.</b> {html.escape(self.claim)}</p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                f"<p style='color:{color}'><b>{html.escape(self.summary)}</b></p>")

    def assert_holds(self) -> Verdict:
        """Raise AssertionError with the whole table if the claim does not hold."""
        if not self.passed:
            raise AssertionError(str(self))
        return self


def rows_html(rows: Sequence[Mapping[str, Any]], cell: Callable[[Any], str]) -> str:
    """Rows of numbers (one dict each, columns from the first) as an HTML table; ``cell``
    formats one value (each lab formats its own numbers)."""
    cols = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{cell(r.get(c))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


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
        return [{"seed": s, **self.lab.measure(self.by_seed(s))} for s in self.seeds]

    def check(self) -> Verdict:
        rows, names = [], []
        for m in self.numbers():
            conds = self.lab.conditions(m)
            names = list(conds)
            rows.append({**m, **conds, "holds": all(conds.values())})
        required = self.lab.required_seeds or len(self.seeds)
        return Verdict(self.lab.claim, rows, names, min(required, len(self.seeds)))


class Lab:
    """Subclass and declare; see the module docstring."""

    title: ClassVar[str] = ""
    claim: ClassVar[str] = ""
    base: ClassVar[RunConfig] = RunConfig()
    arms: ClassVar[dict[str, dict[str, Any]]] = {}
    watch: ClassVar[dict[str, Evaluator]] = {}
    knobs: ClassVar[Sequence[str] | Mapping[str, Any]] = ("lr", "steps", "size")
    metrics: ClassVar[Mapping[str, Sequence[str]] | None] = None
    seeds: ClassVar[tuple[int, ...]] = (0, 1, 2)
    required_seeds: ClassVar[int | None] = None  # None: every seed swept

    def __init__(self, runs_dir: str | Path | None = None, **changes: Any) -> None:
        """``changes`` apply to every arm (e.g. ``preset="gpu"``, ``model="tiny"``)."""
        self.runs_dir = runs_dir
        self.config_base = type(self).base.replace(**changes) if changes else type(self).base

    # -- configs ------------------------------------------------------------------------
    def config(self, arm: str, seed: int = 0, **changes: Any) -> RunConfig:
        """The config of one arm and seed (validated)."""
        if arm not in self.arms:
            raise ConfigError("arm", arm, "one of " + ", ".join(map(repr, self.arms)),
                              f"The arms of {type(self).__name__}.")
        cfg = self.config_base.replace(**self.arms[arm]).replace(seed=seed, **changes)
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
              *, refresh: bool = False, progress: bool = True) -> LabResult:
        """Every arm over several seeds (cached runs are loaded, not trained)."""
        seeds = list(self.seeds if seeds is None else seeds)
        arms = list(self.arms if arms is None else arms)
        result, t0 = LabResult(self), time.perf_counter()
        jobs = [(a, s) for s in seeds for a in arms]
        for arm, seed in tqdm(jobs, desc=f"{type(self).__name__}: {len(arms)} arms × "
                              f"{len(seeds)} seeds", unit="run", disable=not progress):
            result.runs[(arm, seed)] = self.run(arm, seed, refresh=refresh, progress=False)
        result.wall_s = time.perf_counter() - t0
        return result

    def panel(self, arm: str | None = None, seed: int = 0, **kwargs: Any):
        """The lab's control panel, starting from an arm (default: the first)."""
        from ..widgets import ControlPanel

        kwargs.setdefault("title", self.title)
        return ControlPanel(self.config(arm or next(iter(self.arms)), seed), knobs=self.knobs,
                            metrics=self.metrics, evaluators=self.watch,
                            runs_dir=self.runs_dir, **kwargs)

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs: dict[str, Run]) -> dict[str, float]:
        """The numbers of one seed's runs (by arm) that the claim is about."""
        raise NotImplementedError

    def conditions(self, numbers: dict[str, float]) -> dict[str, bool]:
        """The claim as named conditions on one seed's numbers; it holds if all do."""
        raise NotImplementedError
