"""Run one evaluation suite by name, at a size that fits the machine.

``cpu`` evaluates a fixed, stratified subset so that all four suites together take about
a minute on two cores with the embedded model; ``gpu`` evaluates everything. The subsets
are chosen by a fixed seed, so a number measured today compares with one measured later.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..data.benchmark import load_benchmark
from ..data.probes import PROBE_TYPES, TOPICS, load_probes
from ..data.tasks import TASKS, held_out
from ..errors import ConfigError
from .benchmark import run_benchmark
from .format import format_validity
from .loss import validation_loss
from .probes import run_probes
from .result import EvalResult
from .task import task_score


@dataclass(frozen=True)
class SuitePreset:
    """How much of each suite to run (``None``: all of it)."""

    benchmark_per_area: int | None  # items per area
    probes_per_type: int | None  # probes per instruction type
    probe_max_new_tokens: int
    task_rows: int | None  # held-out test rows scored (the first ones of the pool)
    batch_size: int | None  # None: chosen from the machine


SUITE_PRESETS: dict[str, SuitePreset] = {
    # 10 items x 5 areas, 1 probe x 12 types, the first 16 held-out test rows of the task
    # (the held-out pool: never a training row at any data.size).
    "cpu": SuitePreset(benchmark_per_area=10, probes_per_type=1, probe_max_new_tokens=128,
                       task_rows=16, batch_size=16),
    # 320 items, 120 probes, every held-out test row.
    "gpu": SuitePreset(benchmark_per_area=None, probes_per_type=None,
                       probe_max_new_tokens=256, task_rows=None, batch_size=32),
}


def benchmark_subset(per_area: int | None, seed: int = 0):
    """A stratified subset of the benchmark: ``per_area`` items from every area."""
    items = load_benchmark()
    if per_area is None:
        return items
    rng, out = random.Random(seed), []
    for area in dict.fromkeys(it.area for it in items):
        pool = [it for it in items if it.area == area]
        out += rng.sample(pool, min(per_area, len(pool)))
    return out


def probe_subset(per_type: int | None):
    """``per_type`` probes of every instruction type, spread over the topics."""
    probes = load_probes()
    if per_type is None:
        return probes
    step = len(TOPICS) // per_type
    keep = {f"{kind}/{(k + j * step) % len(TOPICS)}" for k, kind in enumerate(PROBE_TYPES)
            for j in range(per_type)}
    return [p for p in probes if p.id in keep]


def suite_rows(p: SuitePreset, task: str, seed: int, split: str = "test") -> list[dict]:
    """The held-out rows a suite scores for a task and seed (never training rows)."""
    return getattr(held_out(task, seed), split)[:p.task_rows]


def _benchmark(model, tok, p: SuitePreset, task, seed, rows, progress):
    return run_benchmark(model, tok, benchmark_subset(p.benchmark_per_area),
                         batch_size=p.batch_size, progress=progress)


def _probes(model, tok, p: SuitePreset, task, seed, rows, progress):
    return run_probes(model, tok, probe_subset(p.probes_per_type),
                      max_new_tokens=p.probe_max_new_tokens, batch_size=p.batch_size,
                      progress=progress)


def _task(model, tok, p: SuitePreset, task, seed, rows, progress):
    return task_score(model, tok, rows or suite_rows(p, task, seed), task,
                      batch_size=p.batch_size, progress=progress)


def _format(model, tok, p: SuitePreset, task, seed, rows, progress):
    return format_validity(model, tok, rows or suite_rows(p, task, seed), task,
                           batch_size=p.batch_size, progress=progress)


def _loss(model, tok, p: SuitePreset, task, seed, rows, progress):
    return validation_loss(model, tok, rows or suite_rows(p, task, seed, "validation"),
                           batch_size=p.batch_size, progress=progress)


SUITES: dict[str, Callable[..., EvalResult]] = {
    "benchmark": _benchmark, "probes": _probes, "format": _format, "task": _task,
    "loss": _loss,
}


def run_suite(suite: str, model, tok, *, preset: str = "cpu", task: str = "arithmetic",
              seed: int = 0, rows: Sequence[dict] | None = None,
              progress: bool = True) -> EvalResult:
    """Evaluate ``model`` on one suite; ``rows`` replaces the generated split of ``task``."""
    if suite not in SUITES:
        raise ConfigError("suite", suite, "one of " + ", ".join(map(repr, SUITES)))
    if preset not in SUITE_PRESETS:
        raise ConfigError("preset", preset, "one of " + ", ".join(map(repr, SUITE_PRESETS)))
    if task not in TASKS and rows is None:
        raise ConfigError("task", task, "one of " + ", ".join(map(repr, TASKS)),
                          "Or pass rows= with test rows of your own.")
    result = SUITES[suite](model, tok, SUITE_PRESETS[preset], task, seed,
                           list(rows) if rows is not None else None, progress)
    result.extra.update(preset=preset, seed=seed)
    return result


# ------------------------------------------------------------------ evaluators for runs


@dataclass(frozen=True)
class SuiteEvaluator:
    """A suite as a run's evaluator: ``train(cfg, evaluators={"probes": evaluator("probes")})``.

    It scores the run's own held-out rows (``ctx.splits.test``) for the task suites. With
    ``when="ends"`` it runs only before the first step and on the returned model; the
    scores of a model that is still the base (step 0 of full fine-tuning or LoRA) are
    cached on disk and shared by every notebook (``ftlab.evaluate.cache``).
    """

    suite: str
    preset: str = "cpu"
    when: str = "ends"
    rows: int | None = None  # held-out rows scored by the task suites (default: the preset's)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ConfigError("suite", self.suite, "one of " + ", ".join(map(repr, SUITES)))
        if self.preset not in SUITE_PRESETS:
            raise ConfigError("preset", self.preset,
                              "one of " + ", ".join(map(repr, SUITE_PRESETS)))
        if self.when not in ("ends", "always"):
            raise ConfigError("when", self.when, "'ends' or 'always'")

    @property
    def key(self) -> str:
        return f"suite:{self.suite}:{self.preset}:{self.when}:{self.rows}"

    def _rows(self, ctx) -> list[dict] | None:
        if self.suite not in ("task", "format", "loss"):
            return None
        split = ctx.splits.validation if self.suite == "loss" else ctx.splits.test
        n = self.rows if self.rows is not None else SUITE_PRESETS[self.preset].task_rows
        return list(split[:n])

    def __call__(self, model, tok, ctx) -> EvalResult:
        from .cache import base_scored

        cfg = ctx.config
        task = cfg.data.scored_as
        rows = self._rows(ctx)

        def compute() -> EvalResult:
            return run_suite(self.suite, model, tok, preset=self.preset, task=task,
                             seed=cfg.seed, rows=rows, progress=False)

        return base_scored(ctx, compute, suite=self.suite, preset=self.preset, rows=rows)


def evaluator(suite: str, preset: str = "cpu", when: str = "ends",
              rows: int | None = None) -> SuiteEvaluator:
    """A ready evaluator by name: ``"task"``, ``"format"``, ``"probes"``, ``"benchmark"``,
    ``"loss"``."""
    return SuiteEvaluator(suite, preset, when, rows)
