"""The five fine-tuning methods as data: a config per method, one registry, one apply().

A method is declared once, here, as one config class: its fields are exactly the knobs a
learner may turn (help text and range in the field metadata, see ``knobs.py``); its class
attributes say what every other module needs to know of it: ``label`` (how tables name it),
``default_lr``, ``summary``, ``starts_as_base``, ``trains_base`` and ``quantized_base``; its
methods give the PEFT config (``peft_config``), the quantisation of the base
(``quantization``), what it trains on a model of a given shape (``trainable_params``, the
formula ``ftlab.instruments.memory_scale`` uses) and the positions its virtual tokens add
(``virtual_inputs``, ``virtual_keys``). ``apply_method`` turns a loaded base model into the
trainable model; ``param_report`` counts honestly what is trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from .errors import ConfigError
from .knobs import KnobConfig, knob, unknown_knob

LORA_TARGETS = {
    "all-linear": "all-linear",
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "q,v": ["q_proj", "v_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
}
# An init_text must give at least one token: PEFT repeats the text's tokens to fill the
# virtual tokens and divides by their number (an empty text: ZeroDivisionError). A space
# is a token of the byte-level tokenizers, so only the empty text is refused.
_SOME_TEXT = {"pattern": r"(?s).+", "allowed": "a text of at least one character"}
# The seven linear layers of a Llama-style block, in the order of ``Shape.linear_shapes``.
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class MethodConfig(KnobConfig):
    """Base of every method config; ``name`` is its key in ``METHODS``."""

    knob_prefix = "method."

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how tables and figures name the method ("LoRA")
    default_lr: ClassVar[float] = 1e-4  # a learning rate that moves this method in a few steps
    summary: ClassVar[str] = ""
    # Before its first step the trained model computes exactly what the base model does
    # (full: it is the base; LoRA: B starts at zero), so the base's scores can be reused.
    starts_as_base: ClassVar[bool] = False
    trains_base: ClassVar[bool] = False  # the base's own weights are trained (no frozen copy)
    quantized_base: ClassVar[bool] = False  # the frozen base is stored in 4 bits

    @classmethod
    def unknown_knob(cls, key: str, value: Any) -> ConfigError:
        have = [m.name for m in METHODS.values() if key in _knobs(m)]
        fix = (f"It is a knob of {', '.join(have)}: choose that method, or remove it." if have
               else "Remove it or choose a method that has it.")
        others = sorted({n for m in METHODS.values() for n in _knobs(m)} - set(_knobs(cls)))
        return unknown_knob(f"method.{key}", value, _knobs(cls), cls.name or cls.__name__,
                            fix, near=others)

    def quantization(self, placement) -> Any:
        """A transformers ``BitsAndBytesConfig`` when the base is loaded quantized."""
        return None

    def peft_config(self, model, tokenizer_source: str) -> Any:
        """The PEFT config that wraps the base model, or None to train the base itself."""
        return None

    def init_trained(self, peft_model, tokenizer) -> None:
        """Give the trained parameters their starting values, after PEFT has added them."""

    # -- what the method trains and stores on a model of a given shape ---------------------
    # ``shape``: a Llama-style model's sizes (``ftlab.instruments.memory_scale.Shape``:
    # hidden, layers, kv_dim, linear_shapes, n_params), so the counts hold for models that
    # cannot be loaded here as for the one that is.
    def trainable_params(self, shape) -> int:
        """Parameters this method trains on a model of this shape."""
        raise NotImplementedError

    def virtual_inputs(self) -> int:
        """Input positions the method adds before the prompt (prompt tuning's soft tokens)."""
        return 0

    def virtual_keys(self) -> int:
        """Key/value positions the method adds inside every attention layer (prefix tuning)."""
        return 0

    def adapter_input_width(self, shape) -> int:
        """Summed input width of the layers whose adapters keep a dropped-out copy of their
        input for the backward pass (LoRA with dropout); 0 for the other methods."""
        return 0

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass
class FullFinetune(MethodConfig):
    """Every weight of the model is trained."""

    name: ClassVar[str] = "full"
    label: ClassVar[str] = "full fine-tuning"
    default_lr: ClassVar[float] = 5e-5
    summary: ClassVar[str] = "all weights trained: most capacity, most memory, most forgetting"
    starts_as_base: ClassVar[bool] = True
    trains_base: ClassVar[bool] = True

    def trainable_params(self, shape) -> int:
        return shape.n_params


@dataclass
class Lora(MethodConfig):
    """Low-rank adapters (Hu et al., 2021): W + (alpha/r)·B·A, base frozen."""

    name: ClassVar[str] = "lora"
    label: ClassVar[str] = "LoRA"
    default_lr: ClassVar[float] = 1e-3
    summary: ClassVar[str] = "low-rank adapters beside frozen weights"
    starts_as_base: ClassVar[bool] = True
    r: int = knob(8, "LoRA rank: the width of the low-rank update; more = more capacity.",
                  low=1, high=256)
    alpha: float = knob(16.0, "LoRA alpha: the update is scaled by alpha / r.",
                        low=0, low_open=True, high=1024)
    # PEFT's default; at 0.05 the masks took a quarter of a CPU step
    # (benchmarks/shared_prefix.py)
    dropout: float = knob(0.0, "Dropout on the adapter input during training.", low=0, high=0.9)
    target_modules: str = knob("all-linear", "Which linear layers get adapters.",
                               choices=tuple(LORA_TARGETS))
    rslora: bool = knob(False, "Scale the update by alpha / sqrt(r) instead of alpha / r "
                        "(rsLoRA, Kalajdzievski 2023: large ranks keep learning).",
                        choices=(False, True))

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not self.rslora:  # absent when off: every earlier run keeps its hash
            del d["rslora"]
        return d

    @property
    def scale(self) -> float:
        """What the update B·A is multiplied by (PEFT's ``scaling``)."""
        return self.alpha / (math.sqrt(self.r) if self.rslora else self.r)

    def peft_config(self, model, tokenizer_source: str) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=self.r, lora_alpha=self.alpha,
                          lora_dropout=self.dropout, use_rslora=self.rslora,
                          target_modules=LORA_TARGETS[self.target_modules])

    def adapted(self, shape) -> list[tuple[int, int]]:
        """(in, out) of the block's linear layers that get an adapter."""
        targets = LORA_TARGETS[self.target_modules]
        return [io for name, io in zip(LINEAR_NAMES, shape.linear_shapes)
                if targets == "all-linear" or name in targets]

    def trainable_params(self, shape) -> int:
        # A (r x in) and B (out x r) beside every adapted linear layer of every block
        return shape.layers * self.r * sum(a + b for a, b in self.adapted(shape))

    def adapter_input_width(self, shape) -> int:
        return sum(a for a, _ in self.adapted(shape)) if self.dropout > 0 else 0


@dataclass
class QLora(Lora):
    """LoRA on a 4-bit quantized base (Dettmers et al., 2023)."""

    name: ClassVar[str] = "qlora"
    label: ClassVar[str] = "QLoRA"
    summary: ClassVar[str] = "LoRA adapters on a 4-bit frozen base"
    starts_as_base: ClassVar[bool] = False  # the 4-bit base differs from the base
    quantized_base: ClassVar[bool] = True
    quant_type: str = knob("nf4", "4-bit data type: NormalFloat4 (nf4) or plain fp4.",
                           choices=("nf4", "fp4"))
    double_quant: bool = knob(True, "Also quantize the quantization constants (saves ~0.4 bit "
                              "per weight).", choices=(True, False))
    compute_dtype: str = knob("auto", "dtype of the matmuls on dequantized weights "
                              "(auto: the run's: bfloat16 on a GPU that computes it, "
                              "float16 on a T4 or V100, else float32).",
                              choices=("auto", "float32", "bfloat16", "float16"))

    def quantization(self, placement) -> Any:
        from transformers import BitsAndBytesConfig

        from .models import require_bitsandbytes

        require_bitsandbytes()
        dtype = placement.dtype if self.compute_dtype == "auto" else getattr(torch,
                                                                             self.compute_dtype)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.quant_type,
                                  bnb_4bit_use_double_quant=self.double_quant,
                                  bnb_4bit_compute_dtype=dtype,
                                  bnb_4bit_quant_storage=torch.uint8)


@dataclass
class PrefixTuning(MethodConfig):
    """Trained key/value vectors prepended at every layer (Li & Liang, 2021)."""

    name: ClassVar[str] = "prefix"
    label: ClassVar[str] = "prefix tuning"
    default_lr: ClassVar[float] = 1e-2
    summary: ClassVar[str] = "trained keys/values prepended at every attention layer"
    num_virtual_tokens: int = knob(20, "How many virtual tokens the prefix holds.",
                                   low=1, high=200)
    init: str = knob("random", "Start from random vectors, or from the keys/values the model "
                     "computes for init_text.", choices=("random", "text"))
    init_text: str = knob("Answer the question correctly and briefly.",
                          "Text whose activations initialise the prefix when init='text'.",
                          **_SOME_TEXT)

    def peft_config(self, model, tokenizer_source: str) -> Any:
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM,
                                  num_virtual_tokens=self.num_virtual_tokens)

    def init_trained(self, peft_model, tokenizer) -> None:
        if self.init == "text":
            _init_prefix_from_text(peft_model, tokenizer, self.init_text)

    def trainable_params(self, shape) -> int:
        # a key and a value vector per layer per virtual token
        return self.num_virtual_tokens * shape.layers * 2 * shape.kv_dim

    def virtual_keys(self) -> int:
        return self.num_virtual_tokens


@dataclass
class PromptTuning(MethodConfig):
    """Trained input embeddings prepended to the prompt (Lester et al., 2021)."""

    name: ClassVar[str] = "prompt"
    label: ClassVar[str] = "prompt tuning"
    default_lr: ClassVar[float] = 3e-2
    summary: ClassVar[str] = "trained soft-prompt embeddings before the input"
    num_virtual_tokens: int = knob(20, "How many soft-prompt tokens are trained.",
                                   low=1, high=200)
    init: str = knob("text", "Start from the embeddings of init_text, of random vocabulary "
                     "tokens, or from random vectors.", choices=("text", "vocab", "random"))
    init_text: str = knob("Answer the question correctly and briefly.",
                          "Text whose token embeddings initialise the soft prompt.",
                          **_SOME_TEXT)

    def peft_config(self, model, tokenizer_source: str) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        init = {"text": PromptTuningInit.TEXT, "vocab": PromptTuningInit.SAMPLE_VOCAB,
                "random": PromptTuningInit.RANDOM}[self.init]
        extra = {}
        if self.init == "text":
            extra = {"prompt_tuning_init_text": self.init_text,
                     "tokenizer_name_or_path": tokenizer_source}
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, prompt_tuning_init=init,
                                  num_virtual_tokens=self.num_virtual_tokens, **extra)

    def trainable_params(self, shape) -> int:
        return self.num_virtual_tokens * shape.hidden  # one input embedding per virtual token

    def virtual_inputs(self) -> int:
        return self.num_virtual_tokens


METHODS: dict[str, type[MethodConfig]] = {
    cls.name: cls for cls in (FullFinetune, Lora, QLora, PrefixTuning, PromptTuning)
}


def method_config(name: str, **knobs: Any) -> MethodConfig:
    """Build a method config by name: ``method_config("lora", r=16)``."""
    if not isinstance(name, str) or name not in METHODS:
        raise ConfigError("method", name, "one of " + ", ".join(map(repr, METHODS)),
                          "Pick a method from ftlab.METHODS.")
    cls = METHODS[name]
    for key in knobs:  # (ClassVars such as default_lr are not knobs)
        if key not in _knobs(cls):
            raise cls.unknown_knob(key, knobs[key])
    return cls(**knobs)


def _knobs(cls: type[MethodConfig]) -> list[str]:
    return [f.name for f in fields(cls) if f.init]


def label_of(name: str) -> str:
    """How tables name a method ("LoRA"); any other name (an arm of a lab) as it is."""
    return METHODS[name].label if name in METHODS else name


def apply_method(model, method: MethodConfig, tokenizer=None, tokenizer_source: str = ""):
    """Wrap a loaded base model so that exactly the method's parameters train."""
    peft_cfg = method.peft_config(model, tokenizer_source)
    if peft_cfg is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    peft_model = get_peft_model(model, peft_cfg)
    method.init_trained(peft_model, tokenizer)
    return peft_model


@torch.no_grad()
def _init_prefix_from_text(peft_model, tok, text: str) -> None:
    """Initialise the prefix with the keys/values the base model computes for real text.

    Li & Liang (2021) found this more stable than random vectors. PEFT's prefix embedding
    row t is (layer, key|value, head, head_dim) flattened; build the same layout.
    """
    if tok is None:
        raise ConfigError("method.init", "text", "a tokenizer to read init_text",
                          "Pass tokenizer= to apply_method.")
    cfg = peft_model.peft_config[peft_model.active_adapter]
    n = cfg.num_virtual_tokens
    ids = tok(text, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
    ids = (ids * (n // len(ids) + 1))[:n]
    base = peft_model.get_base_model()
    device = next(base.parameters()).device
    out = base(torch.tensor([ids], device=device), use_cache=True)
    cache = out.past_key_values
    rows = []
    for layer in range(cfg.num_layers):
        k, v = cache.layers[layer].keys, cache.layers[layer].values  # (1, heads, n, head_dim)
        rows += [k[0].transpose(0, 1).reshape(n, -1), v[0].transpose(0, 1).reshape(n, -1)]
    weight = peft_model.prompt_encoder[peft_model.active_adapter].embedding.weight
    weight.copy_(torch.cat(rows, dim=1).to(weight.dtype))


@dataclass(frozen=True)
class ParamReport:
    """Trainable and total parameters; 4-bit weights counted by their logical number."""

    method: str
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {"method": self.method, "trainable": self.trainable, "total": self.total,
                "percent": self.percent}

    def __str__(self) -> str:
        return (f"{self.method}: {self.trainable:,} trainable of {self.total:,} "
                f"({self.percent:.4g}%)")


def logical_numel(p: torch.Tensor) -> int:
    """Number of weights a tensor stands for: a packed 4-bit tensor holds two per byte."""
    qs = getattr(p, "quant_state", None)
    if qs is not None and getattr(qs, "shape", None) is not None:
        return int(torch.Size(qs.shape).numel())
    return p.numel()


def param_report(model, method: str = "") -> ParamReport:
    """Count trainable and total parameters (shared tensors once)."""
    trainable = total = 0
    for p in model.parameters():  # parameters() yields tied weights once
        n = logical_numel(p)
        total += n
        trainable += n if p.requires_grad else 0
    return ParamReport(method, trainable, total)
