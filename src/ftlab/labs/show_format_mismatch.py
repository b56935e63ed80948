"""Lab 2's figures and tables (``ftlab.labs.format_mismatch``): the label mask of a training
row, validity against the dose of template debris, the answers side by side."""

from __future__ import annotations

import html
from statistics import mean

from .base import Html, LabResult, rows_html
from .format_mismatch import MISMATCHED, SWEPT, dose_response, label_mask


# -- the label mask of one training row ---------------------------------------------------
def label_mask_html(row: dict, tok, fmt: str = "chat", max_length: int = 256,
                    title: str | None = None) -> str:
    """One training row as HTML: masked tokens grey, learned tokens green, special tokens
    (``<|im_start|>``, ``<|im_end|>``) boxed; a line under it says whether the end-of-turn
    token is learned."""
    tokens = label_mask(row, tok, fmt, max_length)
    eos = tok.eos_token
    spans = []
    for t in tokens:
        text = html.escape(t["text"]).replace("\n", "↵<br>")
        style = ("background:#c6efce;color:#0b5a1a;" if t["learned"] else
                 "background:#eeeeee;color:#777777;")
        if t["special"]:
            style += "border:1px solid #333;font-weight:bold;"
        spans.append(f"<span title='id {t['id']}' style='{style}padding:0 1px;"
                     f"margin:0 1px;border-radius:2px'>{text}</span>")
    learned_eos = any(t["learned"] and t["text"] == eos for t in tokens)
    n_learned = sum(t["learned"] for t in tokens)
    verdict = (f"<b>{html.escape(eos)}</b> is learned: the model is taught to stop."
               if learned_eos else
               f"<b>{html.escape(eos)}</b> is <b>not</b> learned: nothing teaches the model "
               "where an answer ends.")
    head = html.escape(title or f"format = {fmt!r}")
    return (f"<div style='font-family:monospace;font-size:12px;line-height:1.9'>"
            f"<p style='font-family:sans-serif'><b>{head}</b>: {len(tokens)} tokens, "
            f"{n_learned} learned (green), {len(tokens) - n_learned} masked with -100 "
            f"(grey).</p>{''.join(spans)}"
            f"<p style='font-family:sans-serif'>{verdict}</p></div>")




# -- figures --------------------------------------------------------------------------------
def dose_response_figure(result: LabResult):
    """Validity, the share of clean answers and the end-of-turn probability after a correct
    answer against the share of rows with template debris: each seed a faint point, the mean
    over seeds a line."""
    import plotly.graph_objects as go

    points = dose_response(result)
    shares = sorted({p["share"] for p in points})
    series = [("valid", "format validity (greedy answers)", "#1f77b4", "solid"),
              ("clean", "answers free of stray markers", "#d62728", "dash"),
              ("end_prob", "P(end-of-turn right after a correct answer)", "#2ca02c", "dot")]
    fig = go.Figure()
    for key, name, color, dash in series:
        fig.add_trace(go.Scatter(
            x=[p["share"] for p in points], y=[p[key] for p in points], mode="markers",
            marker={"color": color, "opacity": 0.35, "size": 9},
            name=f"{name}, each seed", legendgroup=key,
            text=[f"seed {p['seed']}" for p in points]))
        means = [mean(p[key] for p in points if p["share"] == s) for s in shares]
        fig.add_trace(go.Scatter(x=shares, y=means, mode="lines+markers",
                                 line={"color": color, "dash": dash},
                                 name=f"{name}, mean of {len(result.seeds)} seeds",
                                 legendgroup=key))
    rows = result.lab.watch["format"].rows
    fig.update_layout(
        title="Validity falls as more training rows carry template debris",
        xaxis_title="share of training rows ending in '### Answer:' (before <|im_end|>)",
        yaxis_title=f"share of answers / probability ({rows} held-out problems)",
        xaxis={"tickformat": ".0%", "tickvals": shares},
        yaxis={"range": [-0.05, 1.05], "tickformat": ".0%"},
        template="plotly_white", width=900, height=440,
        legend={"x": 1.02, "y": 1, "font": {"size": 11}})
    return fig


# -- tables ---------------------------------------------------------------------------------
def answers_html(result: LabResult, seed: int = 0, arms=(*SWEPT, MISMATCHED)) -> str:
    """The first validation question answered before training and by each arm's model at
    the end (the run's samples), with whether the answer stopped."""
    rows, question = [], ""
    for i, arm in enumerate(arms):
        run = result.runs.get((arm, seed))
        if run is None or not run.samples:
            continue
        first, last = run.samples[0]["samples"][0], run.samples[-1]["samples"][0]
        question = first["question"]
        records = [("base model", run.samples[0]["step"], first)] if i == 0 else []
        records.append((arm, run.samples[-1]["step"], last))
        for name, step, s in records:
            rows.append({"model": name, "step": step,
                         "answer": Html(f"<code>{html.escape(s['answer'])}</code>"),
                         "stopped": "yes" if s["stopped"]
                         else Html("<b style='color:#b00020'>no</b>")})
    table = rows_html(rows, columns=("model", "step", "answer", "stopped"),
                      style={"model": "", "step": "", "answer": "text-align:left",
                             "stopped": ""})
    return f"<p>Question (seed {seed}): <i>{html.escape(question)}</i></p>" + table
