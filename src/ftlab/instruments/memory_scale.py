"""The memory column at scale: training memory per method for 1B to 65B models, by formula.

The same four parts as ``ftlab.memory.breakdown`` (weights, gradients, optimizer state,
activations), computed from a model's shape instead of a loaded model, so that a learner
can ask about a model they cannot load here::

    from ftlab.instruments.memory_scale import estimate, fit_table
    estimate("7b", "qlora")               # one model, one method: GiB per part
    estimate(3e9, "lora", gpu_gb=24)      # your own size (a Llama-shaped model is assumed)
    fit_table()                           # 1B..65B x five methods against 16/24/48/80 GB

Bytes per parameter (``precision``):

- ``"fp32"`` (what the CPU runs here): every weight 4 bytes; a trained one adds a 4-byte
  gradient and two 4-byte AdamW moments: 16 bytes, of which 12 are only for trained ones.
- ``"bf16"`` (a GPU, mixed precision): frozen weights 2 bytes; a trained weight 2 (its
  16-bit copy) + 2 (gradient) + 12 (fp32 master copy and two fp32 moments) = 16 bytes.
- QLoRA: the base's linear layers in 4-bit NF4: 4 bits plus the quantization constants
  (one fp32 absmax per 64 weights = 0.5 bit; double quantization stores them in 8 bits
  with a second-level constant per 256 blocks: 0.127 bit). Embeddings, norms and the
  output layer stay in the compute dtype.

Activations (per layer, Korthikanti et al. 2022): ``s·b·h·(34 + 5·a·s/h)`` bytes at 16 bits;
the ``5·a·s/h`` term (attention scores) vanishes with a fused attention kernel
(``flash=True``). With gradient checkpointing only each layer's input (``2·s·b·h`` bytes) is
kept, plus one layer's full activations during its recomputation. LoRA with dropout also
keeps each adapted layer's dropped-out input and its mask. The output layer adds
the logits, their log-softmax and its gradient in fp32 (``3·4·b·s·V`` bytes), which is a
large share for small models with big vocabularies.

The frozen-base methods (LoRA, prefix, prompt) store the same activations as full
fine-tuning: gradients must flow back through every layer to reach the trained parts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..methods import METHODS as _METHODS
from ..methods import MethodConfig

GiB = 2**30
METHODS = tuple(_METHODS)  # the names, in the registry's order (ftlab.methods)
GPU_SIZES_GB = (16, 24, 48, 80)  # T4; RTX 3090/4090, A10G; A6000, L40S; A100/H100


@dataclass(frozen=True)
class Shape:
    """A decoder-only (Llama-style) model's shape: what decides its memory."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False  # output layer shares the embedding matrix
    head_size: int | None = None  # per-head width when it is not hidden / heads

    @classmethod
    def from_config(cls, config, name: str = "") -> Shape:
        """The shape of a transformers model config (``AutoConfig``): no weights needed."""
        c = config
        return cls(name or getattr(c, "name_or_path", "") or type(c).__name__,
                   c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                   getattr(c, "num_key_value_heads", None) or c.num_attention_heads,
                   c.intermediate_size, c.vocab_size,
                   tied=bool(getattr(c, "tie_word_embeddings", False)),
                   head_size=getattr(c, "head_dim", None))

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of the seven linear layers in one block."""
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        q = self.heads * self.head_dim  # = h in a Llama model
        return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        """Weights in the blocks' linear layers (what QLoRA quantizes)."""
        return self.layers * sum(a * b for a, b in self.linear_shapes)

    @property
    def other_params(self) -> int:
        """Embeddings, output layer, norms: kept in the compute dtype by QLoRA."""
        emb = self.vocab * self.hidden * (1 if self.tied else 2)
        return emb + self.layers * 2 * self.hidden + self.hidden

    @property
    def n_params(self) -> int:
        return self.linear_params + self.other_params


# Published shapes: SmolLM2-135M (this course's model), Llama-3.2-1B, Llama-2-7B and -13B,
# LLaMA-65B (the model of the QLoRA paper's 48 GB claim).
SHAPES: dict[str, Shape] = {
    "135m": Shape("SmolLM2-135M", 576, 30, 9, 3, 1536, 49152, tied=True),
    "1b": Shape("Llama-3.2-1B", 2048, 16, 32, 8, 8192, 128256, tied=True),
    "7b": Shape("Llama-2-7B", 4096, 32, 32, 32, 11008, 32000),
    "13b": Shape("Llama-2-13B", 5120, 40, 40, 40, 13824, 32000),
    "65b": Shape("LLaMA-65B", 8192, 80, 64, 64, 22016, 32000),
}


def shape_for(model: str | float | Shape) -> Shape:
    """A named shape ("7b"), or a Llama-shaped model of about ``model`` parameters.

    For a bare size the shape follows Llama-2's proportions: ``layers = hidden / 128``,
    128-dimensional heads, an MLP of 8/3·hidden, a 32k vocabulary, untied output layer.
    """
    if isinstance(model, Shape):
        return model
    if isinstance(model, str):
        key = model.lower().replace(" ", "")
        if key in SHAPES:
            return SHAPES[key]
        try:
            n = float(key[:-1]) * {"m": 1e6, "b": 1e9}[key[-1]]
        except (KeyError, ValueError, IndexError):
            raise ValueError(f"model = {model!r}: expected one of {', '.join(SHAPES)}, "
                             "a size like '3b' or '350m', or a number of parameters") from None
        return shape_for(n)
    n = float(model)
    if not n > 1e6:
        raise ValueError(f"model = {model!r}: a number of parameters above a million")
    best = None
    for hidden in range(256, 32768 + 1, 128):
        s = Shape(f"Llama-shaped {n / 1e9:.3g}B", hidden, max(1, hidden // 128),
                  max(1, hidden // 128), max(1, hidden // 128),
                  int(round(8 * hidden / 3 / 256)) * 256, 32000)
        if best is None or abs(math.log(s.n_params / n)) < abs(math.log(best.n_params / n)):
            best = s
    return best


def method_for(method: str | MethodConfig, r: int = 8, virtual_tokens: int = 20
               ) -> MethodConfig:
    """The method's config (``ftlab.methods``) with LoRA rank ``r`` or ``virtual_tokens``
    virtual tokens, for whichever of the two knobs it has; a config is used as it is."""
    if isinstance(method, MethodConfig):
        return method
    if method not in _METHODS:
        raise ValueError(f"method = {method!r}: expected one of {', '.join(METHODS)}")
    cls = _METHODS[method]
    knobs = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (("r", r), ("num_virtual_tokens", virtual_tokens))
                  if k in knobs})


def trainable_params(shape: Shape, method: str | MethodConfig, r: int = 8,
                     virtual_tokens: int = 20) -> int:
    """Parameters each method trains on this shape (LoRA: rank r on all seven linears);
    the formula is the method's own (``MethodConfig.trainable_params``)."""
    return method_for(method, r, virtual_tokens).trainable_params(shape)


@dataclass(frozen=True)
class Estimate:
    """Estimated training memory of one method on one model (bytes)."""

    model: str
    method: str
    n_params: int
    trainable: int
    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    precision: str
    batch_size: int
    seq_len: int
    checkpointing: bool

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations

    @property
    def total_gb(self) -> float:
        return self.total / GiB

    def fits(self, gpu_gb: float, headroom_gb: float = 1.0) -> bool:
        """Fits a GPU of ``gpu_gb`` GiB, leaving ``headroom_gb`` for the CUDA context and
        the allocator's fragmentation."""
        return self.total / GiB <= gpu_gb - headroom_gb

    def parts_gb(self) -> dict[str, float]:
        return {k: getattr(self, k) / GiB
                for k in ("weights", "gradients", "optimizer_state", "activations")}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}

    def __str__(self) -> str:
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in self.parts_gb().items())
        return (f"{self.method} on {self.model} ({self.n_params / 1e9:.3g}B params, "
                f"{self.trainable / self.n_params:.3%} trained): {self.total_gb:.2f} GiB "
                f"({parts}; {self.precision}, batch {self.batch_size} x {self.seq_len} "
                f"tokens{', checkpointing' if self.checkpointing else ''})")


def estimate(model: str | float | Shape, method: str, *, precision: str = "bf16",
             batch_size: int = 1, seq_len: int = 512, checkpointing: bool | None = None,
             flash: bool | None = None, r: int = 8, virtual_tokens: int = 20,
             double_quant: bool = True, lora_dropout: bool = True) -> Estimate:
    """Training memory of ``method`` on ``model`` (see the module docstring for the parts).

    ``checkpointing`` defaults to on for QLoRA (as in the QLoRA paper) and off otherwise;
    ``flash`` (a fused attention kernel, no stored attention scores) to on for ``bf16``.
    ``lora_dropout``: LoRA's adapters apply dropout to their input (QLoRA's recipes use
    0.05-0.1; ftlab's runs default to PEFT's 0, pass False to match them),
    which stores one more copy of every adapted layer's input and a mask.
    """
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision = {precision!r}: expected 'bf16' or 'fp32'")
    shape = shape_for(model)
    spec = method_for(method, r, virtual_tokens)
    trainable = spec.trainable_params(shape)
    dense = 2 if precision == "bf16" else 4  # bytes of a stored weight / activation scale
    if checkpointing is None:
        checkpointing = spec.quantized_base  # as in the QLoRA paper
    if flash is None:
        flash = precision == "bf16"

    # weights: frozen and trained parts (QLoRA: 4-bit linears, the rest dense)
    if spec.quantized_base:
        bits = 4 + (8 / 64 + 32 / (64 * 256) if double_quant else 32 / 64)
        base = shape.linear_params * bits / 8 + shape.other_params * dense
    else:
        base = 0 if spec.trains_base else shape.n_params * dense
    trained_weight = trainable * dense  # a trained weight's (16-bit or fp32) copy
    weights = base + trained_weight
    gradients = trainable * dense
    optimizer = trainable * (8 if precision == "fp32" else 12)

    # activations: virtual tokens lengthen the input (prompt) or only the keys (prefix)
    s, b, h, a, L = seq_len, batch_size, shape.hidden, shape.heads, shape.layers
    s = s + spec.virtual_inputs()
    s_attn = s + spec.virtual_keys()
    per_layer16 = s * b * h * (34 + (0 if flash else 5 * a * s_attn / h))
    scale = dense / 2
    if checkpointing:
        layers = L * 2 * s * b * h * scale + per_layer16 * scale
    else:
        layers = L * per_layer16 * scale
    if lora_dropout:
        # each adapted linear keeps its (dropped-out) input and the dropout mask for the
        # backward pass of its adapter: L x s x b x (sum of input widths) x (dense + 1 byte)
        # (with checkpointing only the layer being recomputed holds them)
        layers += (1 if checkpointing else L) * s * b * spec.adapter_input_width(shape) * (
            dense + 1)
    logits = 3 * 4 * b * s * shape.vocab
    return Estimate(model=shape.name, method=spec.name, n_params=shape.n_params,
                    trainable=trainable, weights=int(weights), gradients=int(gradients),
                    optimizer_state=int(optimizer), activations=int(layers + logits),
                    precision=precision, batch_size=batch_size, seq_len=seq_len,
                    checkpointing=checkpointing)


def fit_table(models=("1b", "7b", "13b", "65b"), methods=METHODS, gpus=GPU_SIZES_GB,
              **kwargs) -> list[dict[str, Any]]:
    """One row per model and method: GiB, and the smallest listed GPU it fits (or none)."""
    rows = []
    for m in models:
        for method in methods:
            e = estimate(m, method, **kwargs)
            fits = [g for g in gpus if e.fits(g)]
            rows.append({"model": e.model, "params_B": e.n_params / 1e9, "method": method,
                         "trained_%": 100 * e.trainable / e.n_params, "GiB": e.total_gb,
                         **{f"{g} GB": e.fits(g) for g in gpus},
                         "smallest GPU": f"{min(fits)} GB" if fits else f"> {max(gpus)} GB"})
    return rows


def which_fits(model: str | float | Shape, gpu_gb: float, **kwargs) -> dict[str, Estimate]:
    """The methods whose estimate fits a GPU of ``gpu_gb`` GiB, cheapest first."""
    out = {m: estimate(model, m, **kwargs) for m in METHODS}
    return dict(sorted(((m, e) for m, e in out.items() if e.fits(gpu_gb)),
                       key=lambda kv: kv[1].total))

