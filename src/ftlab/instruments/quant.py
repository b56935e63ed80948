"""4-bit weights as QLoRA stores its frozen base: the grids, what quantizing costs, and
their pictures (the grids against a real layer's weights; error and bits per weight).

QLoRA (Dettmers et al., 2023) keeps the base model in 4 bits per weight. A weight matrix
is cut into blocks of ``BLOCKSIZE`` consecutive weights; each block is divided by its
largest absolute value (its *absmax*, kept at higher precision) so that it lies in
[-1, 1], and every weight is replaced by the nearest of 16 levels. The 16 levels are the
data type:

- **NF4** (NormalFloat): the levels are quantiles of a normal distribution, so each level
  is used about equally often by normally distributed weights;
- **FP4**: a tiny floating-point format (sign, 2-bit exponent, 1-bit mantissa in
  bitsandbytes), levels dense near zero and sparse near the ends; +0 and -0 are two codes,
  so only 15 distinct values remain.

**Double quantisation** quantizes the absmax constants themselves (to 8 bits, in blocks
of 256 with one fp32 constant each), saving about 0.37 bit per weight at blocksize 64.

Everything here runs bitsandbytes' own quantize/dequantize on a CPU tensor: the numbers
are those of the library QLoRA trains with, not a re-implementation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

BLOCKSIZE = 64  # weights per absmax block (bitsandbytes' default for 4-bit)
QUANT_TYPES = ("nf4", "fp4")


def _functional():
    import logging

    # bitsandbytes logs a notice about an optional CPU kernels package; it works without it
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import bitsandbytes.functional as F

    return F


def levels(quant_type: str = "nf4") -> torch.Tensor:
    """The 16 codes of a 4-bit data type as values on the normalised scale [-1, 1], sorted
    (FP4 holds 0 twice, as +0 and -0)."""
    if quant_type not in QUANT_TYPES:
        raise ValueError(f"quant_type {quant_type!r}: use one of {QUANT_TYPES}")
    return torch.sort(_functional().get_4bit_type(quant_type, device="cpu").float()).values


@dataclass(frozen=True)
class QuantResult:
    """What 4-bit storage of a set of weights costs (error) and takes (bytes)."""

    quant_type: str
    double_quant: bool
    blocksize: int
    n_weights: int
    bytes: int  # packed 4-bit codes + absmax constants (+ their own constants)
    rmse: float  # root mean squared error of the dequantized weights
    relative_error: float  # rmse / standard deviation of the weights

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.bytes / self.n_weights

    @property
    def label(self) -> str:
        return f"{self.quant_type.upper()}{' + double quant' if self.double_quant else ''}"

    def to_dict(self) -> dict:
        return {**asdict(self), "bits_per_weight": self.bits_per_weight, "label": self.label}


def state_bytes(state) -> int:
    """Bytes of a bitsandbytes ``QuantState``'s constants (absmax, nested absmax, offset)."""
    n = state.absmax.numel() * state.absmax.element_size()
    if getattr(state, "nested", False):
        s2 = state.state2
        n += s2.absmax.numel() * s2.absmax.element_size()
        n += s2.code.numel() * s2.code.element_size()  # the 8-bit code table (256 floats)
        n += state.offset.numel() * state.offset.element_size()
    return n


def roundtrip(weight: torch.Tensor, quant_type: str = "nf4", double_quant: bool = False,
              blocksize: int = BLOCKSIZE) -> tuple[torch.Tensor, int]:
    """Quantize ``weight`` with bitsandbytes and dequantize it: (weights back, bytes stored)."""
    F = _functional()
    w = weight.detach().to("cpu", torch.float32).contiguous()
    packed, state = F.quantize_4bit(w, blocksize=blocksize, quant_type=quant_type,
                                    compress_statistics=double_quant)
    back = F.dequantize_4bit(packed, state).reshape(w.shape)
    return back, packed.numel() * packed.element_size() + state_bytes(state)


def quantize(weights: torch.Tensor | Iterable[torch.Tensor], quant_type: str = "nf4",
             double_quant: bool = False, blocksize: int = BLOCKSIZE) -> QuantResult:
    """Quantize one weight tensor (or several, pooled) and measure error and storage."""
    tensors = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    sq_err = sq_dev = total = 0.0
    n_bytes = n = 0
    for w in tensors:
        w = w.detach().to("cpu", torch.float32)
        back, b = roundtrip(w, quant_type, double_quant, blocksize)
        sq_err += float((back - w).double().pow(2).sum())
        total += float(w.double().sum())
        sq_dev += float(w.double().pow(2).sum())
        n_bytes += b
        n += w.numel()
    mean = total / n
    var = sq_dev / n - mean * mean
    rmse = (sq_err / n) ** 0.5
    return QuantResult(quant_type, double_quant, blocksize, n, n_bytes, rmse,
                       rmse / var ** 0.5 if var > 0 else float("nan"))


def compare_types(weights: torch.Tensor | Iterable[torch.Tensor],
                  blocksize: int = BLOCKSIZE) -> list[QuantResult]:
    """NF4 and FP4, each with and without double quantisation, on the same weights."""
    tensors = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    return [quantize(tensors, qt, dq, blocksize) for qt in QUANT_TYPES for dq in (False, True)]


def normalised_blocks(weight: torch.Tensor, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """The weights divided by their block's absmax: the [-1, 1] values the grid rounds."""
    w = weight.detach().to("cpu", torch.float32).reshape(-1)
    w = w[: w.numel() // blocksize * blocksize].reshape(-1, blocksize)
    absmax = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    return (w / absmax).reshape(-1)


def level_usage(weight: torch.Tensor, quant_type: str = "nf4",
                blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """Share of the weights rounded to each of the 16 levels (nearest level, as stored)."""
    x = normalised_blocks(weight, blocksize)
    grid = levels(quant_type)
    idx = (x[:, None] - grid[None, :]).abs().argmin(dim=1)
    return torch.bincount(idx, minlength=len(grid)).float() / x.numel()


def linear_weights(model, block: int | None = None) -> dict[str, torch.Tensor]:
    """The weights of a model's linear layers (those QLoRA quantizes), by module name;
    ``block`` keeps one transformer block's (``model.layers.<block>.``)."""
    out = {}
    for name, module in model.named_modules():
        if "lora_" in name or "lm_head" in name:  # adapters are not part of the base
            continue
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and weight is not None:
            if block is None or f"layers.{block}." in name:
                out[name.removeprefix("base_model.model.").removesuffix(".base_layer")] = weight
    return out


def stored_weight_bytes(model) -> dict[str, int]:
    """Bytes the model's weights take as stored: 4-bit codes with their constants counted,
    other parameters and buffers at their dtype; shared tensors once."""
    seen: set[int] = set()
    packed = constants = other = 0
    for p in [*model.parameters(), *model.buffers()]:
        if id(p) in seen:
            continue
        seen.add(id(p))
        size = p.numel() * p.element_size()
        state = getattr(p, "quant_state", None)
        if state is not None:
            packed += size
            constants += state_bytes(state)
        else:
            other += size
    return {"packed_4bit": packed, "quant_constants": constants, "other": other,
            "total": packed + constants + other}


def table(results: Iterable[QuantResult]) -> list[Mapping]:
    """Rows for display: label, bits per weight, relative error, bytes."""
    return [{"format": r.label, "bits/weight": round(r.bits_per_weight, 3),
             "relative error": round(r.relative_error, 4), "rmse": r.rmse,
             "MB": r.bytes / 2**20} for r in results]


# -- pictures ----------------------------------------------------------------------------
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
