"""What a narrow fine-tune does to everything else: the evaluators of the collapse and
regression labs (``ftlab.labs.collapse``, ``ftlab.labs.regression``).

- ``ProbeWatch`` (``probes.*``): instruction probes, scored non-vacuously
  (``ftlab.evaluate.probes``), on a fixed subset before training and on the returned model,
  and on a smaller subset of it at every evaluation during training (``probes.live``); the
  share of answers given in a training task's form.
- ``OtherTasks`` (``other.*``): the tasks the run was *not* trained on, scored by
  generation on fixed held-out rows.
- ``BenchmarkViews`` (``bench.*``): the same benchmark items read two ways, by
  log-likelihood (what the model finds likely) and by generated answer (what it says).

Each reports its per-item outcomes too (``probes.pass/<probe id>``, ``other.item/<task>/<i>``,
``bench.ll_item/<i>``, ``bench.gen_item/<i>``), so a paired interval of before against after
(``paired_diff``) needs nothing but the run folder. The generated answers are kept in the
run folder too (``saved_answers``), for reading before and after side by side. The scores
of a model that is still the base (step 0 of full fine-tuning or LoRA) are cached on disk
(``ftlab.evaluate.cache``): every run and both lab notebooks share one measurement.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.probes import Probe
from ..data.tasks import TASKS, held_out
from ..generation import generate_answers
from .benchmark import choice_logprobs
from .cache import base_model_key, cached_result
from .generated_mc import run_generated_mc
from .probes import score_probe, score_probes, training_form
from .result import EvalResult, mean, wilson_interval
from .suite import benchmark_subset, probe_subset
from .task import answer_rows, score_answer, task_score


@dataclass(frozen=True)
class Sizes:
    """How much each evaluator measures (``None``: all of it)."""

    probes_per_type: int | None  # probes of each of the 12 types, before and after
    live_per_type: int  # the subset measured at every evaluation (part of the above)
    probe_tokens: int  # generation budget of a probe answer
    other_rows: int  # held-out rows of each other task
    bench_per_area: int | None  # benchmark items of each of the 5 areas


SIZES: dict[str, Sizes] = {
    # cpu: 24 probes (12 live) at 64 tokens, 8 rows of each other task, 30 benchmark items.
    # A collapsed model answers in a token or two; the base model's answers are cached.
    "cpu": Sizes(probes_per_type=2, live_per_type=1, probe_tokens=64, other_rows=8,
                 bench_per_area=6),
    # gpu: all 120 probes (24 live) at 160 tokens, 100 rows a task, all 320 items.
    "gpu": Sizes(probes_per_type=None, live_per_type=2, probe_tokens=160, other_rows=100,
                 bench_per_area=None),
}


# -- paired intervals ------------------------------------------------------------------
_T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
         10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 24: 2.06, 30: 2.04, 40: 2.02, 60: 2.00,
         120: 1.98}


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t (the table's next lower df: never too narrow)."""
    if df < 1:
        return math.inf
    return _T975[max(d for d in _T975 if d <= df)] if df <= 120 else 1.96


def paired_diff(before: Sequence[float], after: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``after - before`` over the same items, and its 95% interval (paired t).

    Item by item, so what every item contributes to both scores cancels: the interval is
    the noise of *this* change on *these* items, much narrower than two separate intervals.
    """
    diffs = [a - b for b, a in zip(before, after, strict=True)]
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, math.nan
    d = statistics.fmean(diffs)
    half = t975(n - 1) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else math.inf
    return d, d - half, d + half


def item_values(run, prefix: str, at: str = "final") -> dict[str, float]:
    """Per-item outcomes a run stored under ``prefix`` (``"probes.pass/"``), by item id."""
    evals = [e for e in run.evals if e.get("full", True)]
    if not evals:
        return {}
    metrics = (evals[0] if at == "first" else evals[-1]).get("metrics", {})
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}


def pooled_values(run, prefixes: Sequence[str], at: str = "final") -> dict[str, float]:
    """Per-item outcomes stored under any of ``prefixes``, pooled, by prefixed item id."""
    out: dict[str, float] = {}
    for prefix in prefixes:
        out.update({prefix + k: v for k, v in item_values(run, prefix, at).items()})
    return out


def runs_paired(run, other, prefixes: Sequence[str]) -> tuple[float, float, float]:
    """How much more ``run`` scores than ``other`` after training, item by item, with the
    95% paired interval. Two arms that start from the same base answers on the same items
    (LoRA and full fine-tuning from the one base model) differ by their changes: comparing
    the arms is this interval, not two point estimates side by side."""
    mine, theirs = pooled_values(run, prefixes), pooled_values(other, prefixes)
    ids = sorted(set(mine) & set(theirs))
    return paired_diff([theirs[i] for i in ids], [mine[i] for i in ids])


def run_paired(run, prefix: str) -> tuple[float, float, float]:
    """``paired_diff`` of a run's per-item outcomes, before training against after."""
    before, after = item_values(run, prefix, "first"), item_values(run, prefix)
    ids = sorted(set(before) & set(after))
    return paired_diff([before[i] for i in ids], [after[i] for i in ids])


# -- the answers, kept for reading --------------------------------------------------------
ANSWERS = "answers"  # the run folder's subfolder of kept answers


def _answers_file(run_dir: Path, step: int, name: str) -> Path:
    return Path(run_dir) / ANSWERS / f"{name}-step{step}.json"


def save_answers(ctx, name: str, rows: list[dict], outcomes: dict[str, float]) -> None:
    """Keep an evaluator's answers at ``ctx.step`` in the run's folder, with the numbers
    they gave (see ``saved_answers``): a folder copied elsewhere shows them too."""
    from ..runs import write_json

    if ctx.run_dir is None:
        return  # an evaluator called outside a run: nothing to keep them in
    path = _answers_file(ctx.run_dir, ctx.step, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"outcomes": outcomes, "rows": rows})


def saved_answers(run, name: str = "probes", at: str = "final") -> list[dict] | None:
    """The answers an evaluator of ``run`` generated before training (``at="first"``) or on
    the returned model, one dict per item; None if the run's folder does not hold them.

    They are read from the run folder (``answers/<name>-step<k>.json``) with the per-item
    outcomes they gave; answers whose outcomes differ from the run's own metrics (a file
    from another run) are not returned."""
    evals = [e for e in run.evals if e.get("full", True)]
    if not evals:
        return None
    ev = evals[0] if at == "first" else evals[-1]
    try:
        stored = json.loads(_answers_file(run.path, ev["step"], name).read_text("utf-8"))
        outcomes, rows = stored["outcomes"], stored["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    metrics = ev.get("metrics", {})
    if any(metrics.get(k) != v for k, v in outcomes.items()):
        return None
    return rows


def _outcomes(ctx, out: dict[str, float], name: str) -> dict[str, float]:
    """The per-item numbers the answers gave, under the run's metric names."""
    return {f"{name}.{k}": v for k, v in out.items() if "item/" in k or k.startswith("pass/")}


def _measure(ctx, key: dict, compute: Callable[[], EvalResult]) -> EvalResult:
    """Compute, or read the base model's cached result at step 0."""
    if ctx.step != 0 or not ctx.config.method.starts_as_base:
        return compute()
    return cached_result(base_model_key(ctx.config, **key), compute)


# -- instruction probes -------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeWatch:
    """Instruction probes: a fixed subset before and after training, a smaller one live.

    Numbers: ``score`` (pass rate: format *and* content), ``format_pass_rate`` (the
    vacuous score), ``training_form_share`` (answers in a training task's form),
    ``type/<type>`` (pass rate per instruction type), ``pass/<id>`` (each probe) and
    ``live`` (the live subset's pass rate; at every evaluation).
    """

    preset: str = "cpu"
    sizes: Sizes | None = None  # None: the preset's (``SIZES``)
    when: str = "always"  # the live subset is measured at every evaluation

    @property
    def key(self) -> str:
        return f"behaviour:probes:{self.size}"

    @property
    def size(self) -> Sizes:
        return self.sizes or SIZES[self.preset]

    def probes(self) -> list[Probe]:
        return probe_subset(self.size.probes_per_type)

    def live_probes(self) -> list[Probe]:
        live = {p.id for p in probe_subset(self.size.live_per_type)}
        return [p for p in self.probes() if p.id in live]

    def _run(self, model, tok, probes: list[Probe]) -> EvalResult:
        answers = generate_answers(model, tok, [p.messages for p in probes],
                                   max_new_tokens=self.size.probe_tokens)
        result = score_probes(probes, answers)
        rows = []
        for p, a in zip(probes, answers):
            checks = score_probe(p, a.text)
            rows.append({"id": p.id, "type": p.type, "prompt": p.prompt, "answer": a.text,
                         "stopped": a.stopped, "passed": all(checks.values()), **checks,
                         "training_form": training_form(a.text)})
        result.extra["rows"] = rows
        return result

    def __call__(self, model, tok, ctx) -> dict[str, float]:
        if not ctx.full:  # during training: the live subset only
            live = self._run(model, tok, self.live_probes())
            return {"live": live.score, "live_training_form": live.extra["training_form_share"]}
        probes = self.probes()
        result = _measure(ctx, {"suite": self.key, "probe_ids": [p.id for p in probes]},
                          lambda: self._run(model, tok, probes))
        rows = result.extra["rows"]
        live_ids = {p.id for p in self.live_probes()}
        live = [r for r in rows if r["id"] in live_ids]
        out = {"score": result.score, "format_pass_rate": result.extra["format_pass_rate"],
               "vacuous_share": result.extra["vacuous_share"],
               "training_form_share": result.extra["training_form_share"],
               "words": mean(len(r["answer"].split()) for r in rows),
               "live": mean(r["passed"] for r in live),
               "live_training_form": mean(r["training_form"] is not None for r in live)}
        out.update({f"type/{t}": v for t, v in result.breakdown.items()})
        out.update({f"pass/{r['id']}": float(r["passed"]) for r in rows})
        save_answers(ctx, "probes", rows, _outcomes(ctx, out, "probes"))
        return out


# -- the other tasks, by generation -------------------------------------------------------
@dataclass(frozen=True)
class OtherTasks:
    """The generated tasks a run was not trained on, scored on fixed held-out rows.

    Numbers: ``score`` (mean over those tasks), ``<task>`` (each task's score) and
    ``item/<task>/<i>`` (each row: the share of its parts right). The rows are the first
    of each task's held-out pool for seed 0, the same for every run.
    """

    preset: str = "cpu"
    sizes: Sizes | None = None  # None: the preset's (``SIZES``)
    when: str = "ends"

    @property
    def n_rows(self) -> int:
        return (self.sizes or SIZES[self.preset]).other_rows

    @property
    def key(self) -> str:
        return f"behaviour:other:{self.n_rows}"

    def rows(self, task: str) -> list[dict]:
        return held_out(task, 0).test[:self.n_rows]

    def _run(self, model, tok, tasks: list[str]) -> EvalResult:
        scores, items, answers = {}, {}, []
        for task in tasks:
            rows = self.rows(task)
            got = answer_rows(model, tok, rows, task, batch_size=None, progress=False)
            scores[task] = task_score(model, tok, rows, task, answers=got, progress=False).score
            for i, (row, ans) in enumerate(zip(rows, got)):  # per row, from the same answers
                text = ans.text
                parts = score_answer(task, text, row["meta"])
                items[f"{task}/{i}"] = mean(parts.values())
                answers.append({"task": task, "prompt": row["messages"][-2]["content"],
                                "expected": row["meta"]["answer"], "answer": text,
                                "score": items[f"{task}/{i}"]})
        return EvalResult("other_tasks", mean(scores.values()), len(items), scores,
                          extra={"items": items, "rows": answers})

    def __call__(self, model, tok, ctx) -> dict[str, float]:
        cfg = ctx.config
        tasks = [t for t in TASKS if t != cfg.data.scored_as]
        result = _measure(ctx, {"suite": self.key, "tasks": tasks},
                          lambda: self._run(model, tok, tasks))
        out = {"score": result.score, **result.breakdown}
        out.update({f"item/{k}": v for k, v in result.extra["items"].items()})
        save_answers(ctx, "other", result.extra["rows"], _outcomes(ctx, out, "other"))
        return out


# -- the benchmark, read two ways ---------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkViews:
    """The same benchmark items by log-likelihood (``ll``) and by generated answer (``gen``).

    Numbers: ``ll`` and ``gen`` (accuracy), ``ll/<area>`` and ``gen/<area>``,
    ``ll_item/<i>`` and ``gen_item/<i>`` (each item right or not), ``chance``. Summed
    log-likelihood favours short choices, so two controls come from the same forward passes:
    ``lln`` / ``lln_item/<i>``, the pick by log-likelihood per character of the choice (lm-eval's
    ``acc_norm``), and ``ll_short_item/<i>``, whether the summed pick is a shortest choice
    (ties count); ``shortest`` is the score of always picking the shortest choice.
    """

    preset: str = "cpu"
    sizes: Sizes | None = None  # None: the preset's (``SIZES``)
    when: str = "ends"

    @property
    def per_area(self) -> int | None:
        return (self.sizes or SIZES[self.preset]).bench_per_area

    @property
    def key(self) -> str:
        return f"behaviour:bench:{self.per_area}:norm"

    def items(self):
        return benchmark_subset(self.per_area)

    def _run(self, model, tok) -> EvalResult:
        items = self.items()
        lps = choice_logprobs(model, tok, items, progress=False)
        picks = [max(range(len(s)), key=lambda j: s[j][0]) for s in lps]
        ll = [p == it.answer for it, p in zip(items, picks)]
        lln = [max(range(len(s)), key=lambda j: s[j][0] / len(it.choices[j])) == it.answer
               for it, s in zip(items, lps)]
        short = [is_shortest(it, p) for it, p in zip(items, picks)]
        gen = run_generated_mc(model, tok, items, progress=False)
        areas = sorted({it.area for it in items})
        breakdown = {f"ll/{a}": mean(ok for it, ok in zip(items, ll) if it.area == a)
                     for a in areas}
        breakdown.update({f"gen/{a}": v for a, v in gen.breakdown.items()})
        rows = [{"area": it.area, "question": it.question, "choices": list(it.choices),
                 "expected": it.choices[it.answer], "ll_pick": it.choices[p],
                 "ll_correct": a, "answer": text, "gen_correct": g}
                for it, p, a, text, g in zip(items, picks, ll, gen.extra["answers"],
                                             gen.extra["correct"])]
        return EvalResult("benchmark_views", mean(ll), len(items), breakdown,
                          chance=gen.chance, ci95=wilson_interval(sum(ll), len(ll)),
                          extra={"gen": gen.score, "ll_items": ll, "lln_items": lln,
                                 "short_items": short, "gen_items": gen.extra["correct"],
                                 "rows": rows,
                                 "shortest": mean(is_shortest(it, it.answer) for it in items)})

    def __call__(self, model, tok, ctx) -> dict[str, float]:
        result = _measure(ctx, {"suite": self.key}, lambda: self._run(model, tok))
        out = {"ll": result.score, "gen": result.extra["gen"], "chance": result.chance,
               "lln": mean(result.extra["lln_items"]), "shortest": result.extra["shortest"],
               **result.breakdown}
        for metric, per_item in (("ll_item", "ll_items"), ("lln_item", "lln_items"),
                                 ("ll_short_item", "short_items")):
            out.update({f"{metric}/{i}": float(v)
                        for i, v in enumerate(result.extra[per_item])})
        out.update({f"gen_item/{i}": float(v) for i, v in enumerate(result.extra["gen_items"])})
        save_answers(ctx, "bench", result.extra["rows"], _outcomes(ctx, out, "bench"))
        return out


def is_shortest(item, choice: int) -> bool:
    """Is choice ``choice`` of ``item`` a shortest one, in characters (ties count)?"""
    return len(item.choices[choice]) == min(map(len, item.choices))


def behaviour_watch(preset: str = "cpu", *, task: bool = True,
                    sizes: Sizes | None = None) -> dict:
    """The evaluators both labs watch (one set, so their runs are one cache entry);
    ``sizes`` replaces the preset's (a test's tiny sizes)."""
    from .suite import evaluator

    watch: dict = {"probes": ProbeWatch(preset, sizes), "other": OtherTasks(preset, sizes),
                   "bench": BenchmarkViews(preset, sizes)}
    if task:
        rows = {"cpu": 16, "gpu": 200}[preset]
        watch = {"task": evaluator("task", preset=preset, when="ends", rows=rows), **watch}
    return watch
