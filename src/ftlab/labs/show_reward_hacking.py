"""Lab 4's figures and tables (``ftlab.labs.reward_hacking``): proxy, gold, length and KL
against step and against √KL, the answers and samples, the numbers and the arms."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from .base import Html, Lab, LabResult, rows_html
from .reward_hacking import (
    CORRECT_PAY,
    MARGIN_SEEDS,
    MEASURED,
    WINDOW,
    curve,
    heldout_curve,
    numbers_rows,
)

# -- figures --------------------------------------------------------------------------------
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
              ("length", "answer length (words)"),
              ("kl_measured", "KL to the reference (per token)")]
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
            ks, kl = curve(run, "kl_measured")
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


# -- tables ---------------------------------------------------------------------------------
def samples_html(run, arm: str | None = None, steps: Sequence[int] | None = None,
                 chars: int = 220) -> str:
    """Completions logged during a run (one per question at a few steps) with their proxy
    and gold scores and length: read what the policy learnt to write."""
    logged = [s for s in run.samples if steps is None or s["step"] in steps]
    if not logged:
        return "<p><i>No samples were logged (eval.samples is 0).</i></p>"
    rows = [{"after step": s["step"], "question": r["question"], "expected": str(r["expected"]),
             "completion": r["answer"] if len(r["answer"]) <= chars
             else r["answer"][:chars] + " …",
             "words": f"{r['words']:.0f}", "proxy": f"{r['proxy']:.2f}",
             "gold": f"{r['gold']:.2f}"}
            for s in logged for r in s["samples"]]
    title = _label(arm, run) if arm else run.name
    return f"<p><b>{html.escape(title)}</b></p>" + rows_html(
        rows, style={"question": "", "expected": "", "completion": "white-space:pre-wrap"})


def answers_html(result: LabResult, seed: int = 0, arms: Sequence[str] | None = None,
                 chars: int = 200) -> str:
    """The held-out questions side by side: the base model's greedy answer, then each arm's
    after training, with words and gold, read from each run's folder (``saved_answers``)."""
    from ..evaluate.behaviour import saved_answers

    arms = [a for a in (arms or result.lab.arms) if (a, seed) in result.runs]
    if not arms:
        return "<p>No runs.</p>"
    before = saved_answers(result.runs[(arms[0], seed)], "heldout", "first")
    after = {a: saved_answers(result.runs[(a, seed)], "heldout") for a in arms}
    if before is None or any(v is None for v in after.values()):
        return ("<p><i>These runs' folders hold no answers; train them again with "
                "refresh=True.</i></p>")

    def answer(r: dict) -> Html:
        text = r["answer"] if len(r["answer"]) <= chars else r["answer"][:chars] + " …"
        mark = "right" if r["correct"] else "wrong"
        return Html(f"{html.escape(text)}<br><small>{mark} · {r['words']} words · gold "
                    f"{r['gold']:.2f}</small>")

    heads = {a: f"{LABELS.get(a, a)} after" for a in arms}
    rows = [{"question": b["question"], "expected": b["expected"], "before training": answer(b),
             **{heads[a]: answer(after[a][i]) for a in arms}} for i, b in enumerate(before)]
    text = "white-space:pre-wrap;text-align:left"
    return (f"<p><b>Held-out questions, greedy answers (seed {seed})</b></p>"
            + rows_html(rows, style={"question": "text-align:left", "expected": "",
                                     "before training": text,
                                     **{h: text for h in heads.values()}}))


def measured_html() -> str:
    """What the check reads, as measured on the CPU preset: seeds 3 and 4 (run first, the
    margins checked against them, never asserted) and seeds 0-2 (``MEASURED``, asserted)."""
    columns = {"hacked: words, change (low end)": ("hacked.words.change_lo", ".1f"),
               "hacked: proxy, change (low end)": ("hacked.proxy.change_lo", ".3f"),
               "hacked: paid for length": ("hacked.length_pay.change", ".3f"),
               "hacked: most right answers could earn": ("hacked.correct.change_hi", ".3f"),
               "penalty: words, change": ("length_penalty.words.change", ".1f"),
               "penalty: correct, change (low end)": ("length_penalty.correct.change_lo",
                                                      ".3f")}
    sources = [(MEASURED, (0, 1, 2), "asserted"), (MARGIN_SEEDS, (3, 4), "margins checked")]
    rows = []
    for table, seeds, role in sources:
        for k, seed in enumerate(seeds):
            row = {"seed": seed, "role": role}
            for head, (name, fmt) in columns.items():
                v = table[name][k]
                if name.endswith("correct.change_hi"):
                    v = CORRECT_PAY * v
                row[head] = format(v, fmt)
            rows.append(row)
    return rows_html(sorted(rows, key=lambda r: r["seed"]), style="")


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
    rows = []
    for arm in lab.arms:
        c = lab.config(arm).resolved()
        proxy = c.rl.reward + (f" (labeller picks longer {c.rl.labeller_p_longer:.0%})"
                               if c.rl.reward == "learned" else "")
        rows.append({"arm": arm, "proxy reward": proxy, "KL coefficient β": f"{c.rl.kl:g}",
                     "length penalty (per word)": f"{c.rl.length_penalty:g}",
                     "steps": c.train.max_steps,
                     "questions × completions per step":
                     f"{c.train.batch_size} × {c.rl.generations}",
                     "max completion tokens": c.rl.max_completion_length,
                     "temperature": f"{c.rl.temperature:g}",
                     "learning rate": f"{c.train.learning_rate:g}"})
    base = lab.config_base
    return (f"<p>Preset <b>{html.escape(lab.preset)}</b> ({html.escape(base.model)}, "
            f"GRPO + {html.escape(base.method.name)})</p>" + rows_html(rows))
