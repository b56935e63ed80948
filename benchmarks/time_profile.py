"""Where does a notebook's time go? Runs a notebook's code cells in this process, with an
empty run cache and an empty evaluation cache, and prints the seconds spent in each part
of the work: model build, data and tokenization, trainer set-up, training steps,
validation loss, each evaluator (and the generation and log-likelihood scoring inside it),
the reward model, writing run folders, and the rest (Python, callbacks, figures).

Times are exclusive: a part nested in another (generation inside an evaluator) is counted
once, under its own row named with where it ran ("generation ← evaluator memo").

    python benchmarks/time_profile.py notebooks/failure_modes/20_overfitting.ipynb [--json OUT]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path


def fresh_caches(prefix: str) -> Path:
    """Point ftlab at an empty run cache and an empty evaluation cache (the converted
    models are linked in: converting them is install work, not a run's); the folder."""
    from ftlab.models import cache_dir, embedded_model_dir, tiny_model_dir

    work = Path(tempfile.mkdtemp(prefix=prefix))
    cache = work / "cache"
    cache.mkdir()
    for d in (embedded_model_dir(), tiny_model_dir()):
        (cache / d.relative_to(cache_dir())).parent.mkdir(parents=True, exist_ok=True)
        (cache / d.relative_to(cache_dir())).symlink_to(d)
    os.environ.update(FTLAB_RUNS=str(work / "runs"), FTLAB_CACHE=str(cache))
    return work


class Clock:
    """Exclusive seconds per label, per thread stack (a panel may train on a thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()
        self._lock = threading.Lock()

    def _stack(self) -> list:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def wrap(self, fn, label: str):
        if getattr(fn, "_profiled", False):
            return fn

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            stack = self._stack()
            name = label(args, kwargs) if callable(label) else label
            if stack and name.startswith(("generation", "log-likelihood")):
                name = f"{name} ← {stack[-1][0].split(' ← ')[0]}"
            frame = [name, 0.0]  # label, seconds spent in nested parts
            stack.append(frame)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                stack.pop()
                if stack:
                    stack[-1][1] += elapsed
                with self._lock:
                    self.seconds[name] += elapsed - frame[1]
                    self.calls[name] += 1

        timed._profiled = True
        return timed


def patch_everywhere(owner, attr: str, clock: Clock, label) -> None:
    """Replace ``owner.attr`` and every module-level name bound to the same object (``from x
    import f`` copies the reference), so each call site is timed."""
    original = getattr(owner, attr)
    wrapped = clock.wrap(original, label)
    setattr(owner, attr, wrapped)
    for mod in list(sys.modules.values()):
        if mod is None or not getattr(mod, "__name__", "").startswith("ftlab"):
            continue
        for name, value in list(vars(mod).items()):
            if value is original:
                setattr(mod, name, wrapped)


def instrument(clock: Clock) -> None:
    import torch
    import transformers
    from transformers import GenerationMixin, Trainer

    import ftlab.data.splits
    import ftlab.engine.callbacks as callbacks
    import ftlab.engine.policy
    import ftlab.engine.supervised as supervised
    import ftlab.evaluate.benchmark
    import ftlab.evaluate.cache
    import ftlab.evaluate.loss
    import ftlab.generation
    import ftlab.instruments.common  # noqa: F401 - bound names are patched too
    import ftlab.labs  # noqa: F401
    import ftlab.methods
    import ftlab.models
    import ftlab.rlhf.prompts
    import ftlab.rlhf.reward_model
    import ftlab.runs
    import ftlab.widgets  # noqa: F401

    patch_everywhere(ftlab.models, "load_model", clock, "model build (load)")
    patch_everywhere(ftlab.methods, "apply_method", clock, "model build (method)")
    patch_everywhere(ftlab.data.splits, "load_splits", clock, "data")
    patch_everywhere(supervised, "tokenize_splits", clock, "tokenization")
    patch_everywhere(ftlab.rlhf.prompts, "make_prompts", clock, "data")
    for part in (supervised.SupervisedPart, ftlab.engine.policy.PolicyPart):
        part.build = clock.wrap(part.build, "trainer set-up")
    Trainer.training_step = clock.wrap(Trainer.training_step, "training steps (fwd+bwd)")
    torch.optim.AdamW.step = clock.wrap(torch.optim.AdamW.step, "training steps (optimizer)")
    Trainer.evaluation_loop = clock.wrap(Trainer.evaluation_loop, "validation loss")
    patch_everywhere(ftlab.evaluate.loss, "validation_loss", clock, "validation loss")
    GenerationMixin.generate = clock.wrap(GenerationMixin.generate, "generation")
    patch_everywhere(ftlab.generation, "greedy_decode", clock, "generation")
    patch_everywhere(ftlab.evaluate.benchmark, "choice_logprobs", clock, "log-likelihood")
    patch_everywhere(ftlab.rlhf.reward_model, "train_reward_model", clock,
                     "reward model training")
    patch_everywhere(ftlab.evaluate.cache, "cached_result", clock, "evaluation cache")
    for name in ("__init__", "log", "finish"):
        setattr(ftlab.runs.RunWriter, name,
                clock.wrap(getattr(ftlab.runs.RunWriter, name), "run folder writes"))
    patch_everywhere(ftlab.runs, "write_json", clock, "run folder writes")
    patch_everywhere(ftlab.runs, "find_run", clock, "run cache lookup")

    original = callbacks.run_evaluators

    def run_evaluators(evaluators, model, tok, ctx):
        timed = {n: clock.wrap(fn, f"evaluator {n}") for n, fn in evaluators.items()}
        return original(timed, model, tok, ctx)

    for mod in (callbacks, ftlab.engine.policy):
        mod.run_evaluators = run_evaluators
    transformers.logging.set_verbosity_error()


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text("utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = ap.parse_args()

    work = fresh_caches("ftlab-profile-")

    clock = Clock()
    instrument(clock)
    import IPython.display  # noqa: F401 - display() prints a repr outside a kernel

    ns: dict = {"__name__": "__main__"}
    cells, t0 = code_cells(args.notebook), time.perf_counter()
    per_cell = []
    for i, src in enumerate(cells):
        tc = time.perf_counter()
        exec(compile(src.replace("%matplotlib inline", ""), f"<cell {i}>", "exec"), ns)
        per_cell.append(round(time.perf_counter() - tc, 1))
    total = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)

    rows = sorted(clock.seconds.items(), key=lambda kv: -kv[1])
    rest = total - sum(clock.seconds.values())
    print(f"\n{args.notebook.name}: {total:.1f} s in all (code cells: {per_cell})")
    print(f"{'part':58s} {'s':>8s} {'share':>6s} {'calls':>6s}")
    for name, s in [*rows, ("other (Python, callbacks, figures, imports)", rest)]:
        print(f"{name:58s} {s:8.1f} {s / total:6.1%} {clock.calls.get(name, ''):>6}")
    if args.json:
        args.json.write_text(json.dumps({"notebook": str(args.notebook), "total_s": total,
                                         "cells_s": per_cell, "parts_s": dict(rows),
                                         "other_s": rest}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
