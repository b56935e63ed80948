"""Time the evaluation suite and write the embedded base model's baseline table.

    python benchmarks/eval_suite.py                       # time the cpu preset (4 suites)
    python benchmarks/eval_suite.py --write docs/baseline.md [--preset gpu]

Timing: the four suites of ``run_suite`` (benchmark, probes, format, task on arithmetic) in
one process, wall clock and process CPU time (CPU time counts every thread). The table adds
task score and format validity on every task; the preset named decides the subset sizes.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from ftlab import load_model
from ftlab.data.tasks import TASKS, make_task
from ftlab.evaluate import SUITE_PRESETS, format_validity, run_suite, task_score
from ftlab.evaluate.task import answer_rows

SUITE_ORDER = ("benchmark", "probes", "format", "task")


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu", choices=list(SUITE_PRESETS))
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--write", default=None, help="write the baseline markdown here")
    args = ap.parse_args()

    model, tok = load_model(args.model, device="cpu", dtype="float32")
    results, times = {}, {}
    for suite in SUITE_ORDER:
        results[suite], wall, cpu = timed(lambda s=suite: run_suite(
            s, model, tok, preset=args.preset, task="arithmetic", progress=False))
        times[suite] = (wall, cpu)
        print(f"{suite:<10} wall {wall:6.1f} s  cpu {cpu:6.1f} s  {results[suite]}", flush=True)
    wall, cpu = (sum(t[i] for t in times.values()) for i in (0, 1))
    print(f"{'all four':<10} wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
          f"(preset {args.preset}, {torch.get_num_threads()} threads)", flush=True)
    if not args.write:
        return

    task_rows, preset = [], SUITE_PRESETS[args.preset]
    for task in TASKS:
        if task == "arithmetic":
            t, f = results["task"], results["format"]
        else:  # one generation serves both scores
            rows = make_task(task, preset.task_size).test[:preset.task_rows]
            answers = answer_rows(model, tok, rows, task, batch_size=preset.batch_size,
                                  progress=False)
            t = task_score(model, tok, rows, task, answers=answers, progress=False)
            f = format_validity(model, tok, rows, task, answers=answers, progress=False)
        parts = ", ".join(f"{k} {pct(v)}" for k, v in t.breakdown.items()) \
            if len(t.breakdown) > 1 else ""
        task_rows.append([task, str(t.n), pct(t.score) + (f" ({parts})" if parts else ""),
                          pct(f.score), pct(f.breakdown["parses"]), pct(f.breakdown["stops"]),
                          pct(f.breakdown["clean"])])
        print(task, t, "|", f, flush=True)
    b, p = results["benchmark"], results["probes"]
    bench_rows = [[a, str(d["n"]), pct(d["score"]), pct(d["chance"]),
                   f"{pct(d['ci95'][0])}–{pct(d['ci95'][1])}"]
                  for a, d in b.extra["areas"].items()]
    bench_rows.append(["**overall**", str(b.n), f"**{pct(b.score)}**", pct(b.chance),
                       f"{pct(b.ci95[0])}–{pct(b.ci95[1])}"])
    probe_rows = [[t, str(p.extra["n_per_type"][t]), pct(v)] for t, v in p.breakdown.items()]
    probe_rows.append(["**overall**", str(p.n), f"**{pct(p.score)}**"])
    doc = f"""# Baseline: the embedded base model

SmolLM2-135M-Instruct (the embedded default, Q4_1 GGUF dequantized to fp32), greedy, before
any fine-tuning. Produced by `python benchmarks/eval_suite.py --preset {args.preset} --write
docs/baseline.md` ({platform.machine()}, torch {torch.__version__},
{torch.get_num_threads()} threads). Preset `{args.preset}`: {SUITE_PRESETS[args.preset]}.

## Task score and format validity (test split, seed 0)

Task score reads content leniently (the last number; the first JSON object, per field;
exact match of the one-word label for sentiment). Format validity needs all three: parses
as the task requires, stops with
`<|im_end|>` within the token budget, no stray template tokens.

{table(task_rows, ["task", "n", "task score", "format valid", "parses", "stops", "clean"])}

## Instruction-following probes (pass rate per type)

{table(probe_rows, ["instruction type", "n", "pass rate"])}

## Broad benchmark (log-likelihood multiple choice, 4 choices)

{table(bench_rows, ["area", "n", "accuracy", "chance", "95% CI (Wilson)"])}

## Time

All four suites (benchmark, probes, format, task on arithmetic), preset `{args.preset}`:
{wall:.0f} s wall, {cpu:.0f} s process CPU time (both threads counted).
"""
    with open(args.write, "w", encoding="utf-8") as fh:
        fh.write(doc)
    print("wrote", args.write)


if __name__ == "__main__":
    main()
