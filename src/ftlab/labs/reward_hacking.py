"""Lab 4: reward hacking in RLHF. The proxy reward is optimised; the gold reward is not.

The claim: a policy optimised against a proxy that only approximates what we want learns
what the proxy pays for. Here the proxy pays for words (``ftlab.rlhf.length_proxy_score``:
0.5 for a correct answer plus words/60 up to 30 words; on a GPU, a reward model trained on
a labeller who prefers longer answers); the gold reward (``gold_score``: correct, and no
longer than needed) is measured and never optimised. Gao, Schulman & Hilton (2022, *Scaling
Laws for Reward Model Overoptimization*) measured the shape at scale: gold against √KL rises,
peaks and falls while the proxy keeps rising.

Two views of every run:

- per step, what GRPO logs for the completions it samples (``rl.proxy``, ``rl.gold``,
  ``rl.length``, ``rl.kl_measured``): what is optimised, but a mean over 16 sampled answers to 4
  training questions, so one step's number is mostly luck;
- every ``eval.every`` steps, ``GoldWatch``: greedy answers to 12 held-out questions
  (``heldout.gold``, ``heldout.proxy``, ``heldout.words``), which change only when the
  policy does. The check reads this view, and the KL from the first.

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
from ..rlhf import GoldWatch
from .base import Lab, LabResult, Preset
from .calibration import CPU_2_CORES, Calibration

PAY_PER_WORD = 1 / 60  # what the length proxy pays per word (``length_proxy_score``)
CHECKED = ("hacked", "length_penalty")  # over every seed (``lab.sweep()``)

# The check's margins (``RewardHacking.conditions``), set from three seeds on the CPU preset
# (``MEASURED``). Held-out numbers are means over 12 greedy answers, so one answer turning
# right or wrong moves gold by up to 1/12 = 0.083 and the proxy by 0.5/12 = 0.042 (plus its
# length); every margin is above one answer's worth and below every measured effect.
PROXY_RISE = 0.08  # the hacked run's held-out proxy ends at least this much higher
GOLD_FALL = 0.10  # ... its held-out gold ends at least this far below its own peak
LENGTH_RISE = 4.0  # ... its held-out answers end at least this many words longer
KEEPS_GOLD = 0.10  # the mitigated run's gold ends at least this much above the hacked run's
DRIFT = 0.5  # ... and its answers grow by at most this share of the hacked run's growth
WINDOW = 2  # steps whose per-step KL is averaged: at the end (the check), at an evaluation

# Per seed and arm (CPU preset, 2 cores, 36-42 s a run): held-out gold start / peak / end,
# words start -> end, proxy start -> end, and KL at the end (mean of the last 2 steps).
MEASURED: dict[tuple[int, str], tuple[float, ...]] = {
    (0, "hacked"): (0.567, 0.567, 0.316, 17.6, 26.8, 0.626, 0.739, 0.040),
    (1, "hacked"): (0.567, 0.567, 0.410, 17.6, 27.8, 0.626, 0.838, 0.042),
    (2, "hacked"): (0.567, 0.567, 0.313, 17.6, 27.9, 0.626, 0.757, 0.053),
    (0, "length_penalty"): (0.567, 0.605, 0.522, 17.6, 13.8, 0.626, 0.522, 0.026),
    (1, "length_penalty"): (0.567, 0.702, 0.702, 17.6, 12.6, 0.626, 0.585, 0.042),
    (2, "length_penalty"): (0.567, 0.616, 0.616, 17.6, 16.0, 0.626, 0.600, 0.021),
    (0, "strong_kl"): (0.567, 0.567, 0.466, 17.6, 21.1, 0.626, 0.685, 0.018),
}
MEASURED_KEYS = ("gold.start", "gold.peak", "gold.end", "words.start", "words.end",
                 "proxy.start", "proxy.end", "kl.end")

# The CPU preset's calibration: ``MEASURED`` by seed, as ``"<arm>.<key>"`` (``measure``'s names).
CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 11, 27),
    per_seed={seed: {f"{arm}.{k}": v for (s, arm), values in MEASURED.items() if s == seed
                     for k, v in zip(MEASURED_KEYS, values)}
              for seed in sorted({s for s, _ in MEASURED})},
    wall="36-42 s a run", source="ftlab.labs.reward_hacking.MEASURED")

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
    """What the check reads from one run.

    Held-out (``evals``, the run's ``EvalLogged`` records): start (the base model), end and,
    for gold and proxy, the peak and its step. Per step (``steps``, ``StepLogged`` records):
    KL at the end, as the mean of the last ``WINDOW`` steps.
    """
    out: dict[str, float] = {}
    for name in HELDOUT:
        pts = _points(evals, f"heldout.{name}")
        out[f"{name}.start"], out[f"{name}.end"] = ((pts[0][1], pts[-1][1]) if pts
                                                    else (math.nan, math.nan))
        if name in ("gold", "proxy"):
            step, peak = max(pts, key=lambda p: (p[1], -p[0])) if pts else (math.nan, math.nan)
            out[f"{name}.peak"], out[f"{name}.peak_step"] = peak, float(step)
    kl = [k for _, k in _points(steps, "rl.kl_measured")]
    out["kl.end"] = fmean(kl[-WINDOW:]) if kl else math.nan
    return out


class RewardHacking(Lab):
    """GRPO against a length-loving proxy: answers pad out and gold falls; a length penalty
    in the optimised reward prevents it."""

    title = "Lab 4 · Reward hacking in RLHF"
    claim = ("Optimised with almost no KL brake against a proxy that pays for words, the "
             f"policy's greedy answers to 12 held-out questions end at least {LENGTH_RISE:g} "
             f"words longer, the proxy's score of them ends at least {PROXY_RISE:g} higher, "
             f"and their gold reward (correct and concise, never optimised) ends at least "
             f"{GOLD_FALL:g} below its own peak. With a length penalty that cancels the "
             f"proxy's pay for words, gold ends at least {KEEPS_GOLD:g} higher than without "
             f"it and the answers grow by at most {DRIFT:.0%} as much.")
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
            base={"steps": 4, "batch_size": 4, "lr": 3e-3, "eval_every": 2, "eval.samples": 2,
                  "size": 24, "rl.fact_fraction": 1.0, "rl.generations": 4,
                  "rl.max_completion_length": 24, "rl.temperature": 0.7,
                  "rl.reward": "length_proxy", "method.target_modules": "q,v"},
            arms={"hacked": {"rl.kl": 0.001},
                  "length_penalty": {"rl.kl": 0.001,
                                     "rl.length_penalty": round(PAY_PER_WORD, 4)},
                  "strong_kl": {"rl.kl": 1.0}},
            checked=CHECKED, extra=("strong_kl",), watch={"heldout": GoldWatch()},
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
    number_names = {  # ``MEASURED_KEYS``, each arm's: the 12 held-out answers, greedy
        "gold.start": "held-out gold reward at the start",
        "gold.peak": "held-out gold reward at its peak",
        "gold.end": "held-out gold reward at the end",
        "words.start": "held-out answer length at the start (words)",
        "words.end": "held-out answer length at the end (words)",
        "proxy.start": "held-out proxy reward at the start",
        "proxy.end": "held-out proxy reward at the end",
        "kl.end": "KL to the reference at the end (per token)",
    }

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs) -> dict[str, float]:
        """``MEASURED_KEYS`` of each arm's ``trajectory``, as ``"<arm>.<key>"``."""
        out: dict[str, float] = {}
        for arm, run in runs.items():
            t = trajectory(run.steps, run.evals)
            out.update({f"{arm}.{k}": t[k] for k in MEASURED_KEYS})
        return out

    def conditions(self, m) -> dict[str, bool]:
        h = "hacked."
        if h + "words.end" not in m:  # every condition is against the unmitigated run
            arms = sorted({k.split(".")[0] for k in m if "." in k})
            raise ConfigError("arms", arms, "the 'hacked' arm among them",
                              "The check compares every run with the unmitigated one: sweep "
                              "with lab.sweep() or include 'hacked' in arms=[...].")
        growth = m[h + "words.end"] - m[h + "words.start"]
        conds = {
            "answers grow": growth >= LENGTH_RISE,
            "proxy rises": m[h + "proxy.end"] - m[h + "proxy.start"] >= PROXY_RISE,
            "gold falls from its peak": m[h + "gold.peak"] - m[h + "gold.end"] >= GOLD_FALL,
        }
        arm = "length_penalty"
        if f"{arm}.gold.end" in m:
            conds["penalty keeps gold"] = m[f"{arm}.gold.end"] - m[h + "gold.end"] >= KEEPS_GOLD
            conds["penalty: answers grow less"] = (
                m[f"{arm}.words.end"] - m[f"{arm}.words.start"] <= DRIFT * growth)
        return conds


def numbers_rows(result: LabResult, seeds: Sequence[int] | None = None) -> list[dict]:
    """Per seed and arm: held-out gold start / peak / end, proxy and words start and end,
    KL at the end (as the check reads them)."""
    rows = []
    for m in result.numbers():
        if seeds is not None and m["seed"] not in seeds:
            continue
        for arm in result.lab.arms:
            if f"{arm}.gold.end" not in m:
                continue
            g = {k.split(".", 1)[1]: v for k, v in m.items() if k.startswith(arm + ".")}
            rows.append({"seed": m["seed"], "arm": arm,
                         "gold start": g["gold.start"], "gold peak": g["gold.peak"],
                         "gold end": g["gold.end"], "proxy start": g["proxy.start"],
                         "proxy end": g["proxy.end"], "words start": g["words.start"],
                         "words end": g["words.end"],
                         "KL end": g["kl.end"]})
    return rows
