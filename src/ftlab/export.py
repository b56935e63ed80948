"""Take a trained model home: export a run as an adapter, a merged model or a GGUF file.

``export(run, folder, format=...)`` writes one of:

- ``adapter``: what PEFT saves (only the trained tensors and ``adapter_config.json``); it
  loads on the same base model with ``PeftModel.from_pretrained``.
- ``merged``: the whole model with LoRA folded into its weights, as safetensors with the
  tokenizer and its chat template: any transformers code loads it, no PEFT needed.
- ``gguf``: the merged model as one GGUF file (``f32``, ``f16`` or ``q8_0``) for llama.cpp
  and Ollama, written by ``ftlab.gguf_export`` with the ``gguf`` package.

Every export is checked where it is written (``check=True``): the written files are
loaded back the way a user would load them and their greedy answers to a few held-out
prompts are compared with the run's own model, token for token. Formats that keep every
weight (adapter, merged, GGUF f32) must agree exactly, or the export is refused; f16 and
q8_0 round the weights, so their agreement is measured and written into the model card.

A ``README.md`` model card (``ftlab.model_card``) goes beside every export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, FtlabError
from .gguf_export import GGUF_TYPES, check_architecture, write_gguf
from .runs import Run, load_run, runs_root, weights_problems

FORMATS = ("adapter", "merged", "gguf")
CHECK_PROMPTS = 4  # held-out prompts answered by both models
CHECK_TOKENS = 32  # greedy tokens per answer
LOSSLESS_LOGITS = 1e-3  # largest next-token logit difference a lossless format may show
# (fp32 rounding of the merge is ~1e-6; a weight in the wrong place moves logits by ~0.1-10)


class ExportError(FtlabError):
    """An export that cannot be made or did not reproduce the run's answers."""


@dataclass
class ExportCheck:
    """The exported model's greedy answers against the run's model, prompt by prompt."""

    identical: int  # answers equal token for token
    total: int
    agreeing_tokens: int  # tokens equal before each answer's first difference, summed
    tokens: int  # tokens of the run's model's answers, summed
    lossless: bool  # the format keeps every weight, so anything short of identical fails
    max_logit_diff: float = 0.0  # over every position of the prompts

    @property
    def agreement(self) -> float:
        return self.agreeing_tokens / self.tokens if self.tokens else 1.0

    def __str__(self) -> str:
        return (f"{self.identical}/{self.total} held-out answers token-identical to the run's "
                f"model ({self.agreement:.0%} of tokens before the first difference; largest "
                f"logit difference {self.max_logit_diff:.1e})")

    @property
    def reproduces(self) -> bool:
        """What a lossless format must show: the same answers and the same logits."""
        return self.identical == self.total and self.max_logit_diff <= LOSSLESS_LOGITS


@dataclass
class Export:
    """What ``export`` wrote: the folder, its files and sizes, the check, the card."""

    format: str
    path: Path
    files: dict[str, int] = field(default_factory=dict)
    check: ExportCheck | None = None
    quant: str | None = None

    @property
    def bytes(self) -> int:
        return sum(self.files.values())

    def __str__(self) -> str:
        kind = self.format + (f" ({self.quant})" if self.quant else "")
        text = f"{kind} export in {self.path}: {self.bytes / 2**20:.1f} MB"
        return text + (f"; {self.check}" if self.check else "")


def resolve_run(run: Run | str | Path) -> Run:
    """A ``Run``, a run folder, or a run's name under the runs folder (``ftlab runs``)."""
    if isinstance(run, Run):
        return run
    if not isinstance(run, (str, Path)) or not str(run).strip():
        raise ConfigError("run", run, "a run (what train() returns), a run folder or a "
                          "run's name", "List runs with `ftlab runs`.")
    path = Path(run).expanduser()
    if not path.exists() and (runs_root() / str(run)).is_dir():
        path = runs_root() / str(run)
    return load_run(path)


def check_format(run: Run, format: str, quant: str | None) -> None:
    """Refuse, before anything loads, what the run's method cannot be exported as."""
    if format not in FORMATS:
        raise ConfigError("format", format, "one of " + ", ".join(map(repr, FORMATS)))
    if format == "gguf" and quant not in GGUF_TYPES:
        raise ConfigError("quant", quant, "one of " + ", ".join(map(repr, GGUF_TYPES)),
                          "f32 keeps every weight; f16 halves the file; q8_0 quarters it.")
    method = run.config.method
    if format == "adapter" and method.trains_base:
        raise ConfigError("format", format, "'merged' or 'gguf' for a full fine-tune",
                          "Full fine-tuning changes the model itself: it has no adapter.")
    if format != "adapter" and method.name in ("prefix", "prompt"):
        raise ConfigError("format", format, f"'adapter' for {method.name} tuning",
                          f"{method.name.capitalize()} tuning cannot be merged: it trains "
                          "virtual tokens put before every input, not a change to any "
                          "weight. Export the adapter (format='adapter').")


def trained_model(run: Run):
    """``(model, tokenizer)``: the live model of a run, else its saved weights."""
    if run.model is not None:
        return run.model, run.tokenizer
    weights = run.path / "weights"
    if not weights.is_dir():
        raise ExportError(
            f"Run {run.name} saved no weights (save_weights was off), so there is nothing to "
            "export. Train it again with save_weights=True (`ftlab train --save-weights`), "
            "or export the run returned by train() while its model is in memory.")
    problems = weights_problems(weights, run.config)
    if problems:
        from .errors import RunFolderError

        raise RunFolderError(run.path, problems)
    from .runs import load_trained

    return load_trained(run.path)


def default_folder(run: Run, format: str, quant: str | None) -> Path:
    return Path("exports") / f"{run.name}-{format}{f'-{quant}' if format == 'gguf' else ''}"


def export(run: Run | str | Path, folder: str | Path | None = None, format: str = "adapter",
           *, quant: str = "q8_0", overwrite: bool = False, check: bool = True,
           verdict: str | None = None, model=None, tokenizer=None) -> Export:
    """Export a run's trained model; see the module docstring for the formats.

    ``folder`` must be new or empty unless ``overwrite=True`` (default: ``exports/<run>-<
    format>``). ``verdict``: a lab's verdict to quote in the model card. ``model`` and
    ``tokenizer``: the run's trained model when the run itself holds none (a run read back
    from the cache, retrained by ``model_of``); default: the run's live model, else its
    saved weights.
    """
    from .instruments.adapters import save_target

    run = resolve_run(run)
    check_format(run, format, quant if format == "gguf" else None)
    target_path = Path(folder) if folder is not None else default_folder(run, format, quant)
    save_target(target_path, overwrite, "export", dry_run=True)  # refused before any load
    model, tok = (model, tokenizer or run.tokenizer) if model is not None else trained_model(run)
    if format == "gguf":
        check_architecture(model)
    target = save_target(target_path, overwrite, "export")
    before = {p for p in target.rglob("*")}
    result = Export(format, target, quant=quant if format == "gguf" else None)
    try:
        written = _write(model, tok, run, target, format, quant)
        if check:
            result.check = _check(model, tok, run, target, format, quant, written)
    except BaseException:  # a failed write or check leaves only what was there before
        for p in sorted(set(target.rglob("*")) - before, reverse=True):
            p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
        raise
    from .model_card import write_card

    write_card(run, result, target, verdict=verdict)
    result.files = {str(p.relative_to(target)): p.stat().st_size
                    for p in sorted(target.rglob("*")) if p.is_file()}
    return result


def _gguf_name(quant: str) -> str:
    return f"model-{quant}.gguf"


def _write(model, tok, run: Run, target: Path, format: str, quant: str) -> Path:
    from .instruments.adapters import merged_copy, save_adapter, save_merged

    if format == "adapter":
        save_adapter(model, target, overwrite=True)
        tok.save_pretrained(target)
        return target
    if run.config.method.name == "qlora":
        model = _dequantized(model, run)
    if format == "merged":
        save_merged(model, target, tok, overwrite=True)
        return target
    plain = merged_copy(model) if hasattr(model, "peft_config") else model
    return write_gguf(plain, tok, target / _gguf_name(quant), quant, name=run.name,
                      pre=_pretokenizer(run))


def _dequantized(model, run: Run):
    """A QLoRA model's adapter on the base in its run dtype instead of 4-bit: merging
    into 4-bit weights would round the merge back to 4 bits (PEFT warns of it)."""
    import tempfile

    from peft import PeftModel

    from .models import load_model

    with tempfile.TemporaryDirectory(prefix="ftlab-qlora-") as tmp:
        model.save_pretrained(tmp)
        base, _ = load_model(run.config.model, device="cpu", dtype=run.config.dtype)
        return PeftModel.from_pretrained(base, tmp)


def _pretokenizer(run: Run) -> str:
    """llama.cpp's pre-tokenizer name: the embedded model's own for its tokenizer."""
    from .models import EMBEDDED_ALIASES, TINY_MODEL, embedded_gguf_path

    if run.config.model not in EMBEDDED_ALIASES | {TINY_MODEL}:
        return "default"
    import gguf

    field_ = gguf.GGUFReader(str(embedded_gguf_path())).fields["tokenizer.ggml.pre"]
    return str(field_.contents())


def _reload(run: Run, target: Path, format: str, written: Path):
    """The export loaded the way its user would load it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import load_model

    cfg = run.config
    if format == "adapter":
        from peft import PeftModel

        from .models import choose_placement

        base, tok = load_model(cfg.model, device="cpu", dtype=cfg.dtype,
                               quantization=cfg.method.quantization(choose_placement("cpu")))
        return PeftModel.from_pretrained(base, str(target)), tok
    if format == "merged":
        return load_model(str(target), device="cpu", dtype=cfg.dtype)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(target, gguf_file=written.name,
                                                     dtype=torch.float32)
        return model, AutoTokenizer.from_pretrained(target, gguf_file=written.name)
    finally:
        hf_logging.enable_progress_bar()


def held_out_chats(run: Run, n: int = CHECK_PROMPTS) -> list[list[dict]]:
    """The first ``n`` test questions of the run's data (the assistant turn dropped)."""
    from .data.splits import load_splits

    rows = load_splits(run.config).test[:n]
    return [[m for m in r["messages"] if m["role"] != "assistant"] for r in rows]


def _check(model, tok, run: Run, target: Path, format: str, quant: str,
           written: Path) -> ExportCheck:
    from .instruments.adapters import greedy_tokens, max_logit_difference
    from .models import eval_mode

    chats = held_out_chats(run)
    reloaded, rtok = _reload(run, target, format, written)
    ours = greedy_tokens(model, tok, chats, CHECK_TOKENS)
    theirs = greedy_tokens(reloaded, rtok, chats, CHECK_TOKENS)
    lossless = format != "gguf" or quant == "f32"
    if run.config.method.name == "qlora" and format != "adapter":
        lossless = False  # the 4-bit base is dequantized before the merge
    result = compare_tokens(ours, theirs, lossless)
    with eval_mode(model):  # a live run's model goes back to the mode it was in
        result.max_logit_diff = max_logit_difference(model, reloaded, tok, chats)
    if lossless and not result.reproduces:
        raise ExportError(f"The {format} export in {target} does not reproduce the run's "
                          f"answers ({result}); it keeps every weight, so they must be "
                          "equal. The files it wrote were removed: please report this.")
    return result


def compare_tokens(ours: Sequence[Sequence[int]], theirs: Sequence[Sequence[int]],
                   lossless: bool) -> ExportCheck:
    """How far two models' greedy answers agree, answer by answer."""
    same = agree = total = 0
    for a, b in zip(ours, theirs):
        same += list(a) == list(b)
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        agree += k if list(a) != list(b) else len(a)
        total += len(a)
    return ExportCheck(same, len(ours), agree, total, lossless)
