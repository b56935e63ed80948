"""4-bit weights as QLoRA stores its frozen base: the grids, and what quantizing costs.

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

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import torch

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
