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
  ``rl.length``, ``rl.kl``): what is optimised, but a mean over 16 sampled answers to 4
  training questions, so one step's number is mostly luck;
- every ``eval.every`` steps, ``GoldWatch``: greedy answers to 12 held-out questions
  (``heldout.gold``, ``heldout.proxy``, ``heldout.words``), which change only when the
  policy does. The check reads this view, and the KL from the first.

Arms (GRPO + LoRA on SmolLM2-135M-Instruct, same prompts, steps and learning rate):

- ``hacked``: KL coefficient 0.001 (almost no brake);
- ``length_penalty``: the mitigation checked on every seed, the optimised reward minus 1/60
  per word, which cancels exactly what the proxy pays for length;
- ``strong_kl``: KL coefficient 1, measured on the first seed (``MORE``);
- ``fair_labeller`` (GPU preset only): the learned proxy trained on a labeller who picks the
  longer answer half the time, i.e. no more often than chance.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from ..config import RLConfig, RunConfig
from ..errors import ConfigError
from ..rlhf import GoldWatch
from .base import Lab, LabResult, rows_html

# -- arms and sizes per preset ------------------------------------------------------------
PAY_PER_WORD = 1 / 60  # what the length proxy pays per word (``length_proxy_score``)
ARMS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {"hacked": {"rl.kl": 0.001},
            "length_penalty": {"rl.kl": 0.001, "rl.length_penalty": round(PAY_PER_WORD, 4)},
            "strong_kl": {"rl.kl": 1.0}},
    "gpu": {"hacked": {"rl.kl": 0.001},
            "length_penalty": {"rl.kl": 0.001, "rl.length_penalty": 0.05},
            "strong_kl": {"rl.kl": 0.5},
            "fair_labeller": {"rl.kl": 0.001, "rl.labeller_p_longer": 0.5}},
}
CHECKED = ("hacked", "length_penalty")  # over every seed (``lab.sweep()``)
MORE = ("strong_kl", "fair_labeller")  # the first seed (``lab.sweep(more=True)``), if declared
# CPU: fact questions only (short prompts, and a base model right about 2 in 3 times, so
# gold has something to lose), 4 GRPO steps of 4 questions x 4 completions of at most 24
# tokens, LoRA on q/v at lr 3e-3 (3x the method's default, so that 4 steps move the policy),
# temperature 0.7: about 7 s a step and 37 s a run on 2 cores. Measured with 8 steps, the
# hack is complete by step 4 (held-out words 17.6 -> 27-28 at step 4 and 26-28 at step 8).
# Two prompts a step instead of four halved the step time but hid the hack on one seed of
# three. GPU: classroom scale, the learned reward model as the proxy (not yet measured).
BASES: dict[str, dict[str, Any]] = {
    "cpu": {"steps": 4, "batch_size": 4, "lr": 3e-3, "eval_every": 2, "eval.samples": 2,
            "size": 24, "rl.fact_fraction": 1.0, "rl.generations": 4,
            "rl.max_completion_length": 24, "rl.temperature": 0.7, "rl.reward": "length_proxy",
            "method.target_modules": "q,v"},
    "gpu": {"steps": 30, "batch_size": 8, "lr": 1e-3, "eval_every": 10, "eval.samples": 4,
            "size": 24, "rl.fact_fraction": 1.0, "rl.generations": 8,
            "rl.max_completion_length": 64, "rl.temperature": 0.7, "rl.reward": "learned",
            "rl.labeller_p_longer": 0.9, "method.target_modules": "all-linear"},
}

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
    kl = [k for _, k in _points(steps, "rl.kl")]
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
    arms = ARMS["cpu"]
    watch = {"heldout": GoldWatch()}
    knobs = {"rl.kl": (0.001, 10.0), "rl.length_penalty": (0.0, 0.1), "steps": (2, 300),
             "lr": (1e-5, 1e-1), "rl.generations": (2, 16), "rl.max_completion_length": (8, 256),
             "rl.temperature": (0.1, 2.0), "rl.reward": None, "rl.labeller_p_longer": (0.0, 1.0)}
    metrics = {"reward (proxy: optimised; gold: watched)": ["rl.proxy", "rl.gold",
                                                            "heldout.gold"],
               "completion length (words)": ["rl.length", "heldout.words"],
               "KL to the reference model (per token)": ["rl.kl"]}

    def __init__(self, runs_dir=None, **changes: Any) -> None:
        super().__init__(runs_dir, **changes)
        self.preset = self.config_base.resolved().preset
        self.arms = ARMS[self.preset]
        # the preset's sizes, then the caller's changes on top (whatever name they use)
        self.config_base = type(self).base.replace(**BASES[self.preset]).replace(**changes)

    def sweep(self, seeds=None, arms=None, *, more: bool = False, **kwargs) -> LabResult:
        """``CHECKED`` over every seed; ``more``: also ``MORE`` on the first seed (``arms``:
        those arms over every seed instead)."""
        seeds = list(self.seeds if seeds is None else seeds)
        if arms is not None:
            return super().sweep(seeds, arms, **kwargs)
        result = super().sweep(seeds, CHECKED, **kwargs)
        if more:
            rest = super().sweep(seeds[:1], [a for a in MORE if a in self.arms], **kwargs)
            result.runs.update(rest.runs)
            result.wall_s += rest.wall_s
        return result

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


# -- figures and tables -------------------------------------------------------------------
COLORS = {"hacked": "#d62728", "strong_kl": "#1f77b4", "length_penalty": "#2ca02c",
          "fair_labeller": "#9467bd"}
LABELS = {"hacked": "weak KL (hacked)", "strong_kl": "strong KL",
          "length_penalty": "length penalty", "fair_labeller": "fair labeller"}


def _label(arm: str, run) -> str:
    rl = run.config.rl
    more = f", penalty {rl.length_penalty:.3g}/word" if rl.length_penalty else ""
    return f"{LABELS.get(arm, arm)} (β={rl.kl:g}{more})"


def curves_figure(result: LabResult, seed: int = 0, arms: Sequence[str] | None = None):
    """Proxy, gold, answer length and KL against step, one colour per arm: thin lines each
    step's sampled completions, thick dashed lines the held-out greedy answers."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [("proxy", "proxy reward (optimised)"), ("gold", "gold reward (watched only)"),
              ("length", "answer length (words)"), ("kl", "KL to the reference (per token)")]
    held = {"proxy": "proxy", "gold": "gold", "length": "words"}
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in panels],
                        horizontal_spacing=0.1, vertical_spacing=0.16)
    arms = [a for a in (arms or result.lab.arms) if (a, seed) in result.runs]
    for arm in arms:
        run = result.runs[(arm, seed)]
        color = COLORS.get(arm, "#555555")
        for i, (name, title) in enumerate(panels):
            row, col = divmod(i, 2)
            xs, ys = curve(run, name)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", opacity=0.45,
                                     line={"color": color, "width": 1}, marker={"size": 4},
                                     name=f"{_label(arm, run)}: sampled, each step",
                                     legendgroup=arm, showlegend=i == 0),
                          row=row + 1, col=col + 1)
            if name in held:
                hx, hy = heldout_curve(run, held[name])
                fig.add_trace(go.Scatter(x=hx, y=hy, mode="lines+markers",
                                         line={"color": color, "width": 3, "dash": "dash"},
                                         marker={"size": 8},
                                         name=f"{_label(arm, run)}: held-out, greedy",
                                         legendgroup=arm, showlegend=i == 0),
                              row=row + 1, col=col + 1)
            fig.update_xaxes(title_text="GRPO step", row=row + 1, col=col + 1)
            fig.update_yaxes(title_text=title.split(" (")[0], row=row + 1, col=col + 1)
    fig.update_layout(title=f"Optimising the proxy, watching the gold reward (seed {seed})",
                      template="plotly_white", height=680, width=980,
                      legend={"orientation": "h", "y": -0.14})
    return fig


def kl_figure(result: LabResult, seed: int | None = None, arms: Sequence[str] | None = None):
    """Held-out gold and proxy against √KL (Gao et al. 2022, Fig. 1: reward against distance
    from the initial policy), one line per run. ``seed`` None: every seed.

    The KL at an evaluation is the mean of the per-step KL over the ``WINDOW`` steps up to it
    (0 at the start: the policy is the reference)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["proxy reward (optimised)",
                                                        "gold reward (watched only)"])
    arms = list(arms or result.lab.arms)
    seeds = result.seeds if seed is None else [seed]
    for arm in arms:
        for s in seeds:
            run = result.runs.get((arm, s))
            if run is None:
                continue
            ks, kl = curve(run, "kl")
            for col, name in ((1, "proxy"), (2, "gold")):
                hx, hy = heldout_curve(run, name)
                x = [math.sqrt(max(_kl_at(ks, kl, step), 0.0)) for step in hx]
                fig.add_trace(go.Scatter(
                    x=x, y=hy, mode="lines+markers", line={"color": COLORS.get(arm, "#555")},
                    marker={"size": 7}, name=f"{_label(arm, run)}, seed {s}",
                    legendgroup=f"{arm}{s}", showlegend=col == 1), row=1, col=col)
    for col in (1, 2):
        fig.update_xaxes(title_text="√KL to the reference (per token, TRL's estimate)",
                         row=1, col=col)
        fig.update_yaxes(title_text="reward of the held-out greedy answers", row=1, col=col)
    fig.update_layout(title="Reward against distance from the starting policy (as in Gao et "
                      "al. 2022)", template="plotly_white", height=460, width=980,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _kl_at(steps: Sequence[int], kl: Sequence[float], step: int) -> float:
    part = [k for s, k in zip(steps, kl) if step - WINDOW < s <= step]
    return fmean(part) if part else 0.0


def samples_html(run, arm: str | None = None, steps: Sequence[int] | None = None,
                 chars: int = 220) -> str:
    """Completions logged during a run (one per question at a few steps) with their proxy
    and gold scores and length: read what the policy learnt to write."""
    logged = [s for s in run.samples if steps is None or s["step"] in steps]
    if not logged:
        return "<p><i>No samples were logged (eval.samples is 0).</i></p>"
    rows = []
    for s in logged:
        for r in s["samples"]:
            text = r["answer"] if len(r["answer"]) <= chars else r["answer"][:chars] + " …"
            rows.append(f"<tr><td style='text-align:right'>{s['step']}</td>"
                        f"<td>{html.escape(r['question'])}</td>"
                        f"<td>{html.escape(str(r['expected']))}</td>"
                        f"<td style='white-space:pre-wrap'>{html.escape(text)}</td>"
                        f"<td style='text-align:right'>{r['words']:.0f}</td>"
                        f"<td style='text-align:right'>{r['proxy']:.2f}</td>"
                        f"<td style='text-align:right'>{r['gold']:.2f}</td></tr>")
    title = _label(arm, run) if arm else run.name
    return (f"<p><b>{html.escape(title)}</b></p><table><thead><tr><th>after step</th>"
            "<th>question</th><th>expected</th>"
            "<th>completion</th><th>words</th><th>proxy</th><th>gold</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


def answers_html(result: LabResult, seed: int = 0, arms: Sequence[str] | None = None,
                 chars: int = 200) -> str:
    """The held-out questions side by side: the base model's greedy answer, then each arm's
    after training, with words and gold. Answers live in ftlab's cache (``saved_answers``);
    runs trained on another machine show numbers only."""
    from ..evaluate.behaviour import saved_answers

    arms = [a for a in (arms or result.lab.arms) if (a, seed) in result.runs]
    if not arms:
        return "<p>No runs.</p>"
    before = saved_answers(result.runs[(arms[0], seed)], "heldout", "first")
    after = {a: saved_answers(result.runs[(a, seed)], "heldout") for a in arms}
    if before is None or any(v is None for v in after.values()):
        return "<p><i>The answers of these runs are not kept on this machine.</i></p>"

    def cell(r: dict) -> str:
        text = r["answer"] if len(r["answer"]) <= chars else r["answer"][:chars] + " …"
        return (f"<td style='white-space:pre-wrap;text-align:left'>{html.escape(text)}"
                f"<br><small>{r['words']} words · gold {r['gold']:.2f}</small></td>")

    head = "".join(f"<th>{html.escape(LABELS.get(a, a))} after</th>" for a in arms)
    body = "".join(
        f"<tr><td style='text-align:left'>{html.escape(b['question'])}</td>"
        f"<td>{html.escape(b['expected'])}</td>{cell(b)}"
        + "".join(cell(after[a][i]) for a in arms) + "</tr>"
        for i, b in enumerate(before))
    return (f"<p><b>Held-out questions, greedy answers (seed {seed})</b></p><table><thead><tr>"
            f"<th>question</th><th>expected</th><th>before training</th>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def measured_html(arms: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> str:
    """``MEASURED``, the runs the margins were set from, as an HTML table (held-out answers:
    gold start / peak / end, words and proxy start -> end; KL at the end)."""
    rows = []
    for (seed, arm), v in sorted(MEASURED.items()):
        if (arms is None or arm in arms) and (seeds is None or seed in seeds):
            m = dict(zip(MEASURED_KEYS, v, strict=True))
            rows.append(f"<tr><td>{seed}</td><td>{html.escape(LABELS.get(arm, arm))}</td>"
                        f"<td>{m['gold.start']:.2f} / {m['gold.peak']:.2f} / "
                        f"{m['gold.end']:.2f}</td>"
                        f"<td>{m['words.start']:.1f} → {m['words.end']:.1f}</td>"
                        f"<td>{m['proxy.start']:.2f} → {m['proxy.end']:.2f}</td>"
                        f"<td>{m['kl.end']:.3f}</td></tr>")
    return ("<table><thead><tr><th>seed</th><th>arm</th><th>gold start / peak / end</th>"
            "<th>words</th><th>proxy</th><th>KL at the end</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


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


def numbers_html(result: LabResult, seeds: Sequence[int] | None = None) -> str:
    """``numbers_rows`` as an HTML table."""
    rows = numbers_rows(result, seeds)
    if not rows:
        return "<p>No runs.</p>"

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return html.escape(str(v))

    return rows_html(rows, cell)


def arms_html(lab: Lab) -> str:
    """The lab's arms as resolved on this machine: proxy, KL, penalty, sizes."""
    head = ["arm", "proxy reward", "KL coefficient β", "length penalty (per word)", "steps",
            "questions × completions per step", "max completion tokens", "temperature",
            "learning rate"]
    body = []
    for arm in lab.arms:
        c = lab.config(arm).resolved()
        proxy = c.rl.reward + (f" (labeller picks longer {c.rl.labeller_p_longer:.0%})"
                               if c.rl.reward == "learned" else "")
        cells = [arm, proxy, f"{c.rl.kl:g}", f"{c.rl.length_penalty:g}",
                 c.train.max_steps, f"{c.train.batch_size} × {c.rl.generations}",
                 c.rl.max_completion_length, f"{c.rl.temperature:g}",
                 f"{c.train.learning_rate:g}"]
        body.append("<tr>" + "".join(f"<td style='text-align:right'>{html.escape(str(v))}</td>"
                                     for v in cells) + "</tr>")
    preset = lab.config_base.resolved().preset
    return (f"<p>Preset <b>{html.escape(preset)}</b> ({html.escape(lab.config_base.model)}, "
            f"GRPO + {html.escape(lab.config_base.method.name)})</p><table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{''.join(body)}</tbody></table>")
