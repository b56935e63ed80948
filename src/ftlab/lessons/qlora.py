"""QLoRA's pictures: the 4-bit grids against a real layer's weights; error and memory."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..quant import BLOCKSIZE, QUANT_TYPES, QuantResult, level_usage, levels, normalised_blocks

GRID_COLORS = {"nf4": "#1f5fbf", "fp4": "#d62728"}


def usage_entropy(usage: torch.Tensor) -> float:
    """Bits of information the codes carry (4 if all 16 levels were used equally often)."""
    p = usage[usage > 0].double()
    return float(-(p * p.log2()).sum())


def grid_figure(weight: torch.Tensor, name: str = "", blocksize: int = BLOCKSIZE) -> go.Figure:
    """The layer's weights divided by their block's absmax (the values the grid rounds), as
    a histogram, under the 16 levels of NF4 (top) and FP4 (bottom). NF4 places its levels
    where the weights are; the title of each panel gives the entropy of the codes used."""
    x = normalised_blocks(weight, blocksize).numpy()
    titles = []
    for qt in QUANT_TYPES:
        h = usage_entropy(level_usage(weight, qt, blocksize))
        titles.append(f"{qt.upper()}: 16 codes, the codes carry {h:.2f} of 4 bits")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=titles,
                        vertical_spacing=0.12)
    for row, qt in enumerate(QUANT_TYPES, start=1):
        fig.add_histogram(x=x, nbinsx=200, histnorm="probability density",
                          marker={"color": "#bbb"}, name="weights / block absmax",
                          showlegend=row == 1, row=row, col=1)
        for v in levels(qt).tolist():
            fig.add_vline(x=v, line={"color": GRID_COLORS[qt], "width": 1.5}, row=row, col=1)
        fig.add_scatter(x=[None], y=[None], mode="lines", line={"color": GRID_COLORS[qt]},
                        name=f"{qt.upper()} levels", row=row, col=1)
    fig.update_xaxes(title_text=f"weight / absmax of its block of {blocksize}", row=2, col=1)
    fig.update_yaxes(type="log", title_text="density")
    fig.update_layout(template="plotly_white", width=760, height=520,
                      title=f"Where the 4-bit levels sit: {name}" if name else None,
                      legend={"orientation": "h", "y": -0.15},
                      margin={"l": 60, "r": 20, "t": 70, "b": 40})
    return fig


def quant_figure(results: Sequence[QuantResult], reference_bits: float = 32.0) -> go.Figure:
    """Left: relative error of each 4-bit format on the same weights. Right: bits stored per
    weight (codes + constants), against the ``reference_bits`` of the unquantized weights."""
    labels = [r.label for r in results]
    colors = [GRID_COLORS[r.quant_type] for r in results]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "error: rmse / std of the weights", f"bits per weight (unquantized: {reference_bits:g})"))
    fig.add_bar(x=labels, y=[r.relative_error for r in results], marker={"color": colors},
                text=[f"{r.relative_error:.4f}" for r in results], textposition="outside",
                showlegend=False, row=1, col=1)
    fig.add_bar(x=labels, y=[r.bits_per_weight for r in results], marker={"color": colors},
                text=[f"{r.bits_per_weight:.3f}" for r in results], textposition="outside",
                showlegend=False, row=1, col=2)
    top = max(r.relative_error for r in results)
    fig.update_yaxes(range=[0, top * 1.25], row=1, col=1)
    fig.update_yaxes(range=[0, 5.2], row=1, col=2)
    fig.update_layout(template="plotly_white", width=760, height=360,
                      margin={"l": 50, "r": 20, "t": 40, "b": 40})
    return fig
