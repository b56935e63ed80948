"""LoRA's pictures: the trained update is low-rank, and what the rank buys."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import torch

from ..config import RunConfig
from ..errors import ConfigError
from ..runs import Run
from .adapters import energy_share, lora_layers, lora_update, numerical_rank, singular_values
from .common import train_each
from .prompting import sweep_figure

COLORS = ("#1f5fbf", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def update_spectra(model, names: Sequence[str] | None = None) -> dict[str, dict]:
    """For LoRA layers (default: the q_proj and down_proj of the middle block): singular values
    of the base weight W and of the trained update ΔW = (alpha/r)·B·A, and their norms."""
    layers = lora_layers(model)
    if names is None:
        mid = len({n.split(".layers.")[1].split(".")[0] for n in layers if ".layers." in n}) // 2
        names = [n for n in layers if f"layers.{mid}." in n
                 and n.endswith(("q_proj", "down_proj"))]
    out = {}
    for name in names:
        layer = layers[name]
        delta = lora_update(layer)
        w = layer.base_layer.weight.detach().float().cpu()
        sv_w, sv_d = singular_values(w), singular_values(delta)
        out[name] = {"W": sv_w, "dW": sv_d, "r": layer.r["default"],
                     "rank_dW": numerical_rank(sv_d), "rank_W": numerical_rank(sv_w),
                     "norm_ratio": float(torch.linalg.matrix_norm(delta)
                                         / torch.linalg.matrix_norm(w)),
                     "top1_share": energy_share(sv_d, 1)}
    return out


def update_figure(spectra: dict[str, dict]) -> go.Figure:
    """Singular values (each divided by its largest) of W and of ΔW, log scale: W uses every
    direction, ΔW only r of them; the rest of its spectrum is rounding noise."""
    fig = go.Figure()
    for i, (name, s) in enumerate(spectra.items()):
        short = name.split("layers.")[-1]
        c = COLORS[i % len(COLORS)]
        for key, dash, label in (("W", "dot", "base W"), ("dW", "solid", "update ΔW")):
            sv = s[key]
            y = (sv / sv[0]).clamp_min(1e-12).tolist()
            fig.add_scatter(x=list(range(1, len(y) + 1)), y=y, mode="lines",
                            line={"color": c, "dash": dash},
                            name=f"{label}, layer {short} (rank {s['rank_' + key]})")
        fig.add_vline(x=s["r"], line={"color": "#999", "dash": "dash"})
    r = next(iter(spectra.values()))["r"] if spectra else 0
    fig.update_layout(template="plotly_white", width=760, height=380,
                      title=f"Singular values, largest first (the dashed line is r = {r})",
                      xaxis={"title": "index", "type": "log"},
                      yaxis={"title": "singular value / largest", "type": "log",
                             "exponentformat": "power"},
                      legend={"orientation": "h", "y": -0.25},
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


def rank_figure(runs: dict[int, Run]) -> go.Figure:
    """Left: validation loss over the steps, one line per rank. Right: trainable parameters
    against the final validation loss."""
    return sweep_figure(dict(sorted(runs.items())), "r", "what each rank costs and buys")


# How the update's scale follows the rank: each rule is anchored at the base config's rank,
# where all three give the base's own scale alpha / r.
SCALINGS = {
    "fixed": "alpha fixed: scale alpha / r falls as r grows (the paper's parametrisation)",
    "linear": "alpha = r x scale: the same scale at every rank",
    "rslora": "rsLoRA: scale alpha / sqrt(r) (Kalajdzievski, 2023)",
}


def scaled(base: RunConfig, rule: str, r: int) -> RunConfig:
    """``base`` at rank ``r`` with its update scaled by ``rule`` (``SCALINGS``), so that
    the base rank keeps the base's scale under every rule."""
    m = base.method
    if not hasattr(m, "scale"):
        raise ConfigError("method", m.name, "lora or qlora (a method with a rank and a scale)",
                          "scale rules apply to LoRA adapters only")
    if rule not in SCALINGS:
        raise ConfigError("rule", rule, f"one of {', '.join(SCALINGS)}",
                          "pick how the scale follows the rank")
    if rule == "fixed":
        return base.replace(**{"method.r": r})
    if rule == "linear":
        return base.replace(**{"method.r": r, "method.alpha": m.scale * r})
    return base.replace(**{"method.r": r, "method.rslora": True,
                           "method.alpha": m.scale * math.sqrt(m.r)})


def scale_sweep(base: RunConfig, ranks: Sequence[int], rules: Sequence[str] = tuple(SCALINGS),
                **changes: Any) -> dict[str, dict[int, Run]]:
    """Validation-loss runs (``common.train_each``: cached, no generation) for every rule
    and rank. At the base rank the rules coincide, so its one run stands for all of them."""
    anchor = base.method.r
    configs = {(rule, r): scaled(base, "fixed" if r == anchor else rule, r).replace(**changes)
               for rule in rules for r in ranks}
    runs = train_each(configs, "ranks x scales")
    return {rule: {r: runs[rule, r] for r in ranks} for rule in rules}


def scale_figure(runs: dict[str, dict[int, Run]]) -> go.Figure:
    """Final validation loss against the rank (log axis), one line per scaling rule."""
    fig = go.Figure()
    for i, (rule, by_rank) in enumerate(runs.items()):
        ranks = sorted(by_rank)
        fig.add_scatter(x=ranks, y=[by_rank[r].final["final_val_loss"] for r in ranks],
                        mode="lines+markers", name=SCALINGS[rule],
                        line={"color": COLORS[i % len(COLORS)]})
    fig.update_layout(template="plotly_white", width=760, height=380,
                      title="Where each rank ends, with the scale set three ways",
                      xaxis={"title": "LoRA rank r", "type": "log"},
                      yaxis={"title": "final validation loss"},
                      legend={"orientation": "h", "y": -0.25},
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig
