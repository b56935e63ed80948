"""Does DPO on a length-loving labeller's pairs make answers longer without making them
better? Measures it on the embedded model, per seed, before a lesson is built on it.

Each arm is DPO with LoRA on the same prompts and candidate answers; only the labeller
differs (``pref.p_longer``: 1 always prefers the longer answer, 0 judges on substance: the
correct, then the shorter). ``AnswerWatch`` asks the same 48 held-out questions before and
after (greedy, 64 tokens); length and correctness are reported apart, each change with its
paired 95% interval over the questions.

    python benchmarks/length_trap.py --seeds 0,1,2 [--loss dpo|simpo] [--steps 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

from ftlab.config import RunConfig
from ftlab.engine import train
from ftlab.evaluate.behaviour import paired_diff, saved_answers
from ftlab.rlhf import AnswerWatch

ARMS = {"biased": 1.0, "fair": 0.0}  # pref.p_longer


def config(seed: int, p_longer: float, loss: str, steps: int, lr: float) -> RunConfig:
    reference = "precomputed" if loss == "dpo" else "auto"
    return RunConfig(method="lora", preset="cpu", seed=seed,
                     pref={"loss": loss, "p_longer": p_longer, "reference": reference}
                     ).replace(steps=steps, batch_size=4, lr=lr, eval_every=steps,
                               **{"eval.samples": 0})


def measure(run) -> dict:
    """Words and correctness before and after, each change with its paired interval."""
    before, after = saved_answers(run, "heldout", "first"), saved_answers(run, "heldout")
    out = {}
    for name in ("words", "correct"):
        b = [float(r[name]) for r in before]
        a = [float(r[name]) for r in after]
        d, lo, hi = paired_diff(b, a)
        out[name] = {"before": sum(b) / len(b), "after": sum(a) / len(a),
                     "change": d, "low": lo, "high": hi}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--loss", default="dpo", choices=("dpo", "ipo", "orpo", "simpo"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm, p_longer in ARMS.items():
            t0 = time.perf_counter()
            run = train(config(seed, p_longer, args.loss, args.steps, args.lr),
                        evaluators={"heldout": AnswerWatch()}, progress=False)
            m = measure(run)
            rows.append({"seed": seed, "arm": arm, "s": round(time.perf_counter() - t0, 1),
                         **{f"{k}.{q}": round(v, 3) for k, d in m.items() for q, v in d.items()}})
            w, c = m["words"], m["correct"]
            print(f"seed {seed} {arm:6s}: words {w['before']:.1f} -> {w['after']:.1f} "
                  f"(change {w['change']:+.1f}, 95% [{w['low']:+.1f}, {w['high']:+.1f}]); "
                  f"correct {c['before']:.3f} -> {c['after']:.3f} (change {c['change']:+.3f}, "
                  f"95% [{c['low']:+.3f}, {c['high']:+.3f}]); {rows[-1]['s']} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
