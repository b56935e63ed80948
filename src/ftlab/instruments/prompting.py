"""Prefix and prompt tuning's pictures: where the trained vectors enter, and two sweeps."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..methods import METHODS
from ..runs import Run
from .memory_scale import Shape

TRAINED = "#ff7f0e"
DERIVED = "#ffd8b0"
FROZEN = "#d9d9d9"
COLORS = ("#1f5fbf", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def model_config(spec: str):
    """The transformers config of a model spec (shapes only; no weights are loaded)."""
    from transformers import AutoConfig

    from ..models import resolve_source

    return AutoConfig.from_pretrained(resolve_source(spec))


def trained_numbers(model_config, n_virtual: int) -> dict[str, int]:
    """What each method trains for ``n_virtual`` virtual tokens, from the model's shapes:
    prompt tuning one embedding per token; prefix tuning a key and a value per token at every
    layer (keys and values have ``kv_heads × head_dim`` numbers)."""
    shape = Shape.from_config(model_config)
    counts = {name: METHODS[name](num_virtual_tokens=n_virtual).trainable_params(shape)
              for name in ("prompt", "prefix")}  # each method's own formula (ftlab.methods)
    return {**counts, "hidden": shape.hidden, "kv": shape.kv_dim, "layers": shape.layers}


def where_figure(model_config, n_virtual: int = 20) -> go.Figure:
    """Two schematic models side by side. Prompt tuning: trained vectors enter once, as extra
    input positions; every layer then computes their keys and values like any token's.
    Prefix tuning: no extra input; trained keys and values are placed in front of the real
    ones inside the attention of every layer."""
    n = trained_numbers(model_config, n_virtual)
    fig = go.Figure()
    shapes, notes = [], []

    def box(x0, y0, x1, y1, color, text="", size=11, line="#555"):
        shapes.append({"type": "rect", "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                       "fillcolor": color, "line": {"color": line, "width": 1}})
        if text:
            notes.append({"x": (x0 + x1) / 2, "y": (y0 + y1) / 2, "text": text,
                          "showarrow": False, "font": {"size": size}})

    words = ["What", "is", "2+3", "?"]
    n_soft = 3  # drawn; the real count is in the caption
    layers = [("layer 1", 2.6), ("layer 2", 4.0), (f"layer {n['layers']}", 6.2)]
    for x0, kind in ((0.0, "prompt"), (11.0, "prefix")):
        soft_in = kind == "prompt"
        positions = ([("soft", TRAINED)] * n_soft if soft_in else []) + \
            [(w, FROZEN) for w in words]
        width = 9.0 / (n_soft + len(words))
        # input row
        start = x0 + 0.5 + (0 if soft_in else n_soft * width)
        for i, (w, color) in enumerate(positions):
            box(start + i * width + 0.05, 0.0, start + (i + 1) * width - 0.05, 0.8, color,
                "p" + str(i + 1) if w == "soft" else w, size=10)
        box(x0 + 0.5, 1.2, x0 + 9.5, 1.9, "#f4f4f4", "embedding (frozen)")
        for label, y in layers:
            box(x0 + 0.5, y, x0 + 9.5, y + 1.1, "#fafafa", "")
            notes.append({"x": x0 + 0.2, "y": y + 0.55, "text": label, "showarrow": False,
                          "textangle": -90, "font": {"size": 10}})
            for i in range(n_soft + len(words)):
                virtual = i < n_soft
                if virtual and soft_in:
                    color, text = DERIVED, "k,v"
                elif virtual:
                    color, text = TRAINED, "K,V"
                else:
                    color, text = FROZEN, "k,v"
                box(x0 + 0.5 + i * width + 0.08, y + 0.15, x0 + 0.5 + (i + 1) * width - 0.08,
                    y + 0.95, color, text, size=9)
        notes.append({"x": x0 + 5.0, "y": 5.45, "text": "⋮", "showarrow": False,
                      "font": {"size": 18}})
        title = ("<b>prompt tuning</b>: trained vectors enter once, as input"
                 if soft_in else "<b>prefix tuning</b>: trained keys/values in every layer")
        count = (f"trained: {n_virtual} × {n['hidden']} = {n['prompt']:,} numbers" if soft_in
                 else f"trained: {n_virtual} × {n['layers']} layers × 2 × {n['kv']} = "
                      f"{n['prefix']:,} numbers")
        notes.append({"x": x0 + 5.0, "y": 7.9, "text": title, "showarrow": False,
                      "font": {"size": 13}})
        notes.append({"x": x0 + 5.0, "y": 7.45, "text": count, "showarrow": False,
                      "font": {"size": 11}})
    legend = [(TRAINED, "trained"), (DERIVED, "computed from trained vectors (not trained)"),
              (FROZEN, "keys/values of the real tokens (frozen weights)")]
    for i, (color, text) in enumerate(legend):
        box(0.5 + i * 7.0, -1.3, 0.9 + i * 7.0, -0.9, color)
        notes.append({"x": 1.0 + i * 7.0, "y": -1.1, "text": text, "showarrow": False,
                      "xanchor": "left", "font": {"size": 11}})
    fig.update_layout(shapes=shapes, annotations=notes, template="plotly_white", width=820,
                      height=480, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"visible": False, "range": [-0.3, 20.8]},
                      yaxis={"visible": False, "range": [-1.6, 8.3]})
    return fig


def sweep_figure(runs: dict, label: str, title: str) -> go.Figure:
    """Left: validation loss over the steps, one line per value. Right: trainable parameters
    against the final validation loss (``label`` names the knob)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("validation loss while training", title))
    for i, (v, run) in enumerate(runs.items()):
        c = COLORS[i % len(COLORS)]
        x, y = run.curve("val_loss")
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"{label} = {v}",
                        line={"color": c}, row=1, col=1)
        fig.add_scatter(x=[run.final["params"]["trainable"]], y=[run.final["final_val_loss"]],
                        mode="markers+text", text=[str(v)], textposition="top center",
                        marker={"color": c, "size": 10}, showlegend=False, row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="trainable parameters", type="log", row=1, col=2)
    fig.update_yaxes(title_text="validation loss", row=1, col=1)
    fig.update_layout(template="plotly_white", width=760, height=360,
                      margin={"l": 60, "r": 20, "t": 40, "b": 40})
    return fig


def init_figure(runs: dict[str, Run]) -> go.Figure:
    """Validation loss over the steps for each initialisation of the soft prompt, with the
    base model's loss (no soft prompt) as a reference line when given as ``runs['base']``."""
    fig = go.Figure()
    for i, (name, run) in enumerate(runs.items()):
        x, y = run.curve("val_loss")
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"init = {name}",
                        line={"color": COLORS[i % len(COLORS)]})
    fig.update_layout(template="plotly_white", width=760, height=360,
                      xaxis={"title": "step"}, yaxis={"title": "validation loss"},
                      margin={"l": 60, "r": 20, "t": 30, "b": 40})
    return fig
