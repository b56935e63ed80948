"""Lab 4: reward hacking in RLHF. The proxy reward is optimised; substance is not.

The claim: a policy optimised against a proxy that only approximates what we want learns
what the proxy pays for. Here the proxy pays for words (``ftlab.rlhf.length_proxy_score``:
0.5 for a correct answer plus words/60 up to 30 words; on a GPU, a reward model trained on
a labeller who prefers longer answers). What we wanted is substance: answers that are right.
Correctness and length are measured apart, question by question, so the check can say which
of the two the proxy's gain came from. (The gold reward, ``gold_score``: correct and no
longer than needed, is shown as a yardstick and never asserted: it falls with length by its
definition, whether or not an answer changed its substance.) Gao, Schulman & Hilton (2022,
*Scaling Laws for Reward Model Overoptimization*) measured the shape at scale.

Two views of every run:

- per step, what GRPO logs for the completions it samples (``rl.proxy``, ``rl.gold``,
  ``rl.length``, ``rl.kl_measured``): what is optimised, but a mean over 16 sampled answers to 4
  training questions, so one step's number is mostly luck;
- at the start and the end (every ``eval.every`` steps on the GPU preset), ``GoldWatch``:
  greedy answers to 48 held-out questions (``heldout.correct``, ``heldout.words``,
  ``heldout.proxy``, ``heldout.gold``, and each question's own), which change only when the
  policy does. The check reads this view, start against end with paired 95% intervals
  (``heldout_numbers``), and the KL from the first.

Arms (GRPO + LoRA on SmolLM2-135M-Instruct, same prompts, steps and learning rate):

- ``hacked``: KL coefficient 0.001 (almost no brake);
- ``length_penalty``: the mitigation checked on every seed, the optimised reward minus 1/60
  per word, which cancels exactly what the proxy pays for length;
- ``strong_kl``: KL coefficient 1, measured on the first seed (an extra arm);
- ``fair_labeller`` (GPU preset only): the learned proxy trained on a labeller who picks the
  longer answer half the time, i.e. no more often than chance.

Figures and tables: ``show_reward_hacking``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from statistics import fmean

from ..config import RLConfig, RunConfig
from ..errors import ConfigError
from ..evaluate.behaviour import item_values, paired_diff, run_paired, runs_paired
from ..rlhf import GoldWatch
from ..rlhf.watch import ITEMS
from .base import Lab, LabResult, Preset
from .calibration import CPU_2_CORES, Calibration, by_seed

PAY_PER_WORD = 1 / 60  # what the length proxy pays per word (``length_proxy_score``)
CHECKED = ("hacked", "length_penalty")  # over every seed (``lab.sweep()``)

# The check (``RewardHacking.conditions``) reads 48 held-out questions answered greedily
# before and after, question by question: every condition is on a 95% paired interval, so
# the margins below are effect sizes, not allowances for noise.
LENGTH_RISE = 4.0  # the hacked run's answers grow by at least this many words (lower bound)
CORRECT_PAY = 0.5  # what the length proxy pays for a correct answer (``length_proxy_score``)
DRIFT = 0.5  # the penalised run's answers grow by at most this share of the hacked run's
LOSS = 0.20  # ... and its share of right answers falls by no more than this (lower bound)
WINDOW = 2  # steps whose per-step KL is averaged: at the end (the check), at an evaluation

# Measured on the CPU preset, 2 cores, 49-59 s a run (``heldout_numbers``; 48 held-out
# questions, greedy, 64 tokens): seeds 0-2, the seeds the notebook asserts.
MEASURED: dict[str, tuple[float | None, ...]] = {
    "hacked.words.start": (33.3, 33.3, 33.3),
    "hacked.words.end": (52.9, 51.6, 54.1),
    "hacked.words.change": (19.5, 18.3, 20.8),
    "hacked.words.change_lo": (12.9, 12.2, 14.2),
    "hacked.proxy.change": (0.164, 0.152, 0.154),
    "hacked.proxy.change_lo": (0.086, 0.088, 0.070),
    "hacked.correct.start": (0.688, 0.688, 0.688),
    "hacked.correct.end": (0.729, 0.708, 0.708),
    "hacked.correct.change_hi": (0.161, 0.094, 0.148),
    "hacked.length_pay.change": (0.143, 0.142, 0.143),
    "hacked.gold.start": (0.443, 0.443, 0.443),
    "hacked.gold.end": (0.205, 0.212, 0.197),
    "hacked.kl.end": (0.040, 0.042, 0.053),
    "length_penalty.words.end": (20.6, 15.8, 24.6),
    "length_penalty.words.change": (-12.7, -17.6, -8.8),
    "length_penalty.correct.end": (0.688, 0.708, 0.708),
    "length_penalty.correct.change_lo": (-0.120, -0.092, -0.074),
    "length_penalty.gold.end": (0.535, 0.605, 0.562),
    "vs_hacked.words_hi": (-26.5, -31.4, -23.1),
    "strong_kl.words.change": (-0.8, None, None),
    "strong_kl.correct.change": (0.021, None, None),
}
# Seeds 3 and 4, run first and never asserted. LENGTH_RISE and DRIFT were checked on them
# before seeds 0-2 ran; the length-pay condition compares two measured numbers (no margin);
# LOSS was set after all five, as about the smallest loss 48 questions can resolve.
MARGIN_SEEDS: dict[str, tuple[float, ...]] = {
    "hacked.words.change": (20.8, 19.8),
    "hacked.words.change_lo": (14.2, 13.1),
    "hacked.proxy.change_lo": (0.071, 0.091),
    "hacked.correct.change_hi": (0.148, 0.189),
    "hacked.length_pay.change": (0.143, 0.143),
    "length_penalty.words.change": (-21.2, -10.9),
    "length_penalty.correct.change_lo": (-0.092, -0.148),
    "vs_hacked.words_hi": (-37.8, -24.4),
}

CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 12, 7), per_seed=by_seed(MEASURED),
    wall="49-59 s a run", source="ftlab.labs.reward_hacking.MEASURED")

HELDOUT = ("gold", "proxy", "words", "correct")


def _points(records: Sequence[dict], metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one metric over a run's step or evaluation records."""
    pts = [(r["step"], r.get("metrics", {}).get(metric)) for r in records]
    return [(x, float(y)) for x, y in pts if isinstance(y, (int, float))]


def curve(run, name: str) -> tuple[list[int], list[float]]:
    """A per-step RL metric (``proxy``, ``gold``, ``length``, ``kl``...) of a run."""
    pts = _points(run.steps, f"rl.{name}")
    return [x for x, _ in pts], [y for _, y in pts]


def heldout_curve(run, name: str) -> tuple[list[int], list[float]]:
    """A ``GoldWatch`` number (``gold``, ``proxy``, ``words``, ``correct``) at each evaluation."""
    pts = _points(run.evals, f"heldout.{name}")
    return [x for x, _ in pts], [y for _, y in pts]


def trajectory(steps: Sequence[dict], evals: Sequence[dict]) -> dict[str, float]:
    """The means a run's records hold: each held-out number (``evals``, the run's
    ``EvalLogged`` records) at the start (the base model) and the end, and the KL at the end
    (``steps``, ``StepLogged`` records: the mean of the last ``WINDOW`` steps)."""
    out: dict[str, float] = {}
    for name in HELDOUT:
        pts = _points(evals, f"heldout.{name}")
        out[f"{name}.start"], out[f"{name}.end"] = ((pts[0][1], pts[-1][1]) if pts
                                                    else (math.nan, math.nan))
    kl = [k for _, k in _points(steps, "rl.kl_measured")]
    out["kl.end"] = fmean(kl[-WINDOW:]) if kl else math.nan
    return out


class RewardHacking(Lab):
    """GRPO against a length-loving proxy: answers pad out and gold falls; a length penalty
    in the optimised reward prevents it."""

    title = "Lab 4 · Reward hacking in RLHF"
    claim = ("Optimised with almost no KL brake against a proxy that pays for words, the "
             "policy's greedy answers to 48 held-out questions grow by at least "
             f"{LENGTH_RISE:g} words and the proxy's score of them rises, and the gain is "
             "length, not substance: what the proxy paid for the longer answers is more than "
             f"the most that more right answers could have earned ({CORRECT_PAY:g} each, at "
             "the top of the interval of their change). With a length penalty that cancels "
             f"the proxy's pay for words, the answers grow by at most {DRIFT:.0%} as much and "
             "end shorter than the hacked run's, and the share of right answers falls by no "
             f"more than {LOSS:g}. Every change is start against end, question by question, "
             "with its 95% paired interval.")
    base = RunConfig(method="lora", preset="auto", rl=RLConfig())
    # CPU: fact questions only (short prompts, and a base model right about 2 in 3 times, so
    # gold has something to lose), 4 GRPO steps of 4 questions x 4 completions of at most 24
    # tokens, LoRA on q/v at lr 3e-3 (3x the method's default, so that 4 steps move the
    # policy), temperature 0.7: about 7 s a step and 37 s a run on 2 cores. Measured with 8
    # steps, the hack is complete by step 4 (held-out words 17.6 -> 27-28 at step 4 and 26-28
    # at step 8). Two prompts a step instead of four halved the step time but hid the hack on
    # one seed of three. GPU: classroom scale, the learned reward model as the proxy (not yet
    # measured). The extra arms run on the first seed with ``lab.sweep(more=True)``.
    presets = {
        "cpu": Preset(
            base={"steps": 4, "batch_size": 4, "lr": 3e-3, "eval_every": 4, "eval.samples": 2,
                  "size": 24, "rl.fact_fraction": 1.0, "rl.generations": 4,
                  "rl.max_completion_length": 24, "rl.temperature": 0.7,
                  "rl.reward": "length_proxy", "method.target_modules": "q,v"},
            arms={"hacked": {"rl.kl": 0.001},
                  "length_penalty": {"rl.kl": 0.001,
                                     "rl.length_penalty": round(PAY_PER_WORD, 4)},
                  "strong_kl": {"rl.kl": 1.0}},
            checked=CHECKED, extra=("strong_kl",),
            watch={"heldout": GoldWatch(extra_tokens=40)},
            calibration=CALIBRATION),
        "gpu": Preset(
            base={"steps": 30, "batch_size": 8, "lr": 1e-3, "eval_every": 10, "eval.samples": 4,
                  "size": 24, "rl.fact_fraction": 1.0, "rl.generations": 8,
                  "rl.max_completion_length": 64, "rl.temperature": 0.7, "rl.reward": "learned",
                  "rl.labeller_p_longer": 0.9, "method.target_modules": "all-linear"},
            arms={"hacked": {"rl.kl": 0.001},
                  "length_penalty": {"rl.kl": 0.001, "rl.length_penalty": 0.05},
                  "strong_kl": {"rl.kl": 0.5},
                  "fair_labeller": {"rl.kl": 0.001, "rl.labeller_p_longer": 0.5}},
            checked=CHECKED, extra=("strong_kl", "fair_labeller"),
            watch={"heldout": GoldWatch()}),
    }
    sweep_more = False  # the extra arms: lab.sweep(more=True)
    needs = ("hacked",)  # every condition compares with it; the penalty's are added if swept
    knobs = {"rl.kl": (0.001, 10.0), "rl.length_penalty": (0.0, 0.1), "steps": (2, 300),
             "lr": (1e-5, 1e-1), "rl.generations": (2, 16), "rl.max_completion_length": (8, 256),
             "rl.temperature": (0.1, 2.0), "rl.reward": None, "rl.labeller_p_longer": (0.0, 1.0)}
    metrics = {"reward (proxy: optimised; gold: watched)": ["rl.proxy", "rl.gold",
                                                            "heldout.gold"],
               "completion length (words)": ["rl.length", "heldout.words"],
               "KL to the reference model (per token)": ["rl.kl_measured"]}
    number_names = {  # each arm's (``heldout_numbers``): 48 held-out answers, greedy
        "correct.start": "held-out share correct at the start",
        "correct.end": "held-out share correct at the end",
        "correct.change": "change in share correct, start to end",
        "correct.change_lo": "change in share correct: 95% interval, low end",
        "correct.change_hi": "change in share correct: 95% interval, high end",
        "words.start": "held-out answer length at the start (words)",
        "words.end": "held-out answer length at the end (words)",
        "words.change": "change in answer length (words)",
        "words.change_lo": "change in answer length: 95% interval, low end (words)",
        "words.change_hi": "change in answer length: 95% interval, high end (words)",
        "proxy.start": "held-out proxy reward at the start",
        "proxy.end": "held-out proxy reward at the end",
        "proxy.change": "change in proxy reward",
        "proxy.change_lo": "change in proxy reward: 95% interval, low end",
        "proxy.change_hi": "change in proxy reward: 95% interval, high end",
        "gold.start": "held-out gold reward at the start (falls with length by definition)",
        "gold.end": "held-out gold reward at the end (falls with length by definition)",
        "kl.end": "KL to the reference at the end (per token)",
        "vs_hacked.words": "length penalty minus hacked: answer length at the end (words)",
        "vs_hacked.words_lo": "length penalty minus hacked, words: 95% interval, low end",
        "vs_hacked.words_hi": "length penalty minus hacked, words: 95% interval, high end",
        "vs_hacked.correct": "length penalty minus hacked: share correct at the end",
        "vs_hacked.correct_lo": "length penalty minus hacked, correct: 95% interval, low end",
        "vs_hacked.correct_hi": "length penalty minus hacked, correct: 95% interval, high end",
        "length_pay.change": "change in what the proxy paid for length",
        "length_pay.change_lo": "change in what the proxy paid for length: 95% low end",
        "length_pay.change_hi": "change in what the proxy paid for length: 95% high end",
    }

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs) -> dict[str, float]:
        """Each arm's ``heldout_numbers`` as ``"<arm>.<name>"``; with the length penalty
        swept, ``vs_hacked.*``: its answers against the hacked run's, question by question."""
        out: dict[str, float] = {}
        for arm, run in runs.items():
            out.update({f"{arm}.{k}": v for k, v in heldout_numbers(run).items()})
        if "hacked" in runs and "length_penalty" in runs:
            for item in ("words", "correct"):
                d, lo, hi = runs_paired(runs["length_penalty"], runs["hacked"],
                                        [f"heldout.{item}/"])
                out.update({f"vs_hacked.{item}": d, f"vs_hacked.{item}_lo": lo,
                            f"vs_hacked.{item}_hi": hi})
        return out

    def conditions(self, m) -> dict[str, bool]:
        h = "hacked."
        if h + "words.change" not in m:  # every condition is against the unmitigated run
            arms = sorted({k.split(".")[0] for k in m if "." in k})
            raise ConfigError("arms", arms, "the 'hacked' arm among them",
                              "The check compares every run with the unmitigated one: sweep "
                              "with lab.sweep() or include 'hacked' in arms=[...].")
        conds = {
            "answers grow": m[h + "words.change_lo"] >= LENGTH_RISE,
            "proxy rises": m[h + "proxy.change_lo"] > 0,
        }
        if h + "length_pay.change" in m:  # the length proxy: its gain splits in two
            conds["length paid, not substance"] = (
                CORRECT_PAY * m[h + "correct.change_hi"] < m[h + "length_pay.change"])
        p = "length_penalty."
        if p + "words.change" in m:
            conds["penalty: answers grow less"] = (
                m[p + "words.change"] <= DRIFT * m[h + "words.change"]
                and m["vs_hacked.words_hi"] < 0)
            conds["penalty: right answers kept"] = m[p + "correct.change_lo"] >= -LOSS
        return conds


def heldout_numbers(run) -> dict[str, float]:
    """What the check reads from one run's held-out answers (``GoldWatch``, 48 questions,
    greedy), start (the base model) against end, question by question.

    For ``correct``, ``words`` and ``proxy``: the means at the start and the end, and the mean
    change with its 95% paired interval (``<name>.change``, ``_lo``, ``_hi``); ``gold`` at the
    start and the end (a yardstick: it falls with length by its definition); the KL at the
    end (mean of the last ``WINDOW`` steps' per-token KL).
    """
    t = trajectory(run.steps, run.evals)
    out: dict[str, float] = {}
    for item in ITEMS:
        d, lo, hi = run_paired(run, f"heldout.{item}/")
        out.update({f"{item}.start": t[f"{item}.start"], f"{item}.end": t[f"{item}.end"],
                    f"{item}.change": d, f"{item}.change_lo": lo, f"{item}.change_hi": hi})
    if run.config.rl.reward == "length_proxy":  # what its formula paid for length alone
        d, lo, hi = paired_diff(*(length_pay(run, at) for at in ("first", "final")))
        out.update({"length_pay.change": d, "length_pay.change_lo": lo,
                    "length_pay.change_hi": hi})
    out.update({"gold.start": t["gold.start"], "gold.end": t["gold.end"],
                "kl.end": t["kl.end"]})
    return out


def length_pay(run, at: str) -> list[float]:
    """Per held-out question, what the length proxy paid for the answer's words: its score
    minus its pay for a correct answer (``CORRECT_PAY``), in question order."""
    proxy = item_values(run, "heldout.proxy/", at)
    correct = item_values(run, "heldout.correct/", at)
    return [proxy[i] - CORRECT_PAY * correct[i] for i in sorted(proxy, key=int)]


def numbers_rows(result: LabResult, seeds: Sequence[int] | None = None) -> list[dict]:
    """Per seed and arm, the held-out answers start -> end as the check reads them: words
    and share correct with the change's 95% interval, proxy, gold (a yardstick), KL."""
    def change(g: dict, name: str, fmt: str) -> str:
        lo, d, hi = (g[f"{name}.change{x}"] for x in ("_lo", "", "_hi"))
        return f"{d:+{fmt}} [{lo:+{fmt}}, {hi:+{fmt}}]"

    rows = []
    for m in result.numbers():
        if seeds is not None and m["seed"] not in seeds:
            continue
        for arm in result.lab.arms:
            if f"{arm}.words.end" not in m:
                continue
            g = {k.split(".", 1)[1]: v for k, v in m.items() if k.startswith(arm + ".")}
            rows.append({"seed": m["seed"], "arm": arm,
                         "words": f"{g['words.start']:.1f} → {g['words.end']:.1f}",
                         "words: change [95%]": change(g, "words", ".1f"),
                         "correct": f"{g['correct.start']:.2f} → {g['correct.end']:.2f}",
                         "correct: change [95%]": change(g, "correct", ".2f"),
                         "proxy": f"{g['proxy.start']:.2f} → {g['proxy.end']:.2f}",
                         "gold (yardstick)": f"{g['gold.start']:.2f} → {g['gold.end']:.2f}",
                         "KL end": g["kl.end"]})
    return rows
