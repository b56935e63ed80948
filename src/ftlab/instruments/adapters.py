"""After training: look inside an adapter, save it, merge it, and check the merge.

- ``lora_update(module)``: the update a LoRA layer adds to its frozen weight,
  ``ΔW = (alpha / r) · B · A``, as one matrix; ``singular_values`` shows how many
  directions it really uses.
- ``save_adapter(model, folder)``: what PEFT writes (only the trained tensors) and its size.
- ``merge_check(model, tok, chats)``: fold LoRA into the base weights
  (``merge_and_unload``) on a copy and compare the greedy answers token for token;
  ``save_merged(model, folder)`` saves such a merged model.
- Both saves refuse a folder that already holds files unless ``overwrite=True``, and say
  in one line what is wrong with a path that cannot take the save.
- ``model_of(run)``: the trained model of a run, also when the run came from the cache.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, EnvPathError, RunFolderWarning, writable_folder
from ..models import eval_mode


# -- looking inside a LoRA adapter ----------------------------------------------------------
def lora_layers(model) -> dict[str, torch.nn.Module]:
    """Every layer that carries a LoRA adapter, by name (``model.layers.3.self_attn.q_proj``)."""
    from peft.tuners.lora import LoraLayer

    return {name.removeprefix("base_model.model."): m for name, m in model.named_modules()
            if isinstance(m, LoraLayer)}


def lora_update(module, adapter: str = "default") -> torch.Tensor:
    """``ΔW = (alpha / r) · B · A`` of one LoRA layer (out_features × in_features), fp32."""
    with torch.no_grad():
        return module.get_delta_weight(adapter).detach().float().cpu()


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values, largest first. A rank-r update has at most r that are not ~0."""
    return torch.linalg.svdvals(matrix.float())


def energy_share(sv: torch.Tensor, k: int) -> float:
    """Share of the squared Frobenius norm in the first ``k`` singular values."""
    sq = sv.double().pow(2)
    return float(sq[:k].sum() / sq.sum()) if float(sq.sum()) > 0 else float("nan")


def numerical_rank(sv: torch.Tensor, rel_tol: float = 1e-4) -> int:
    """How many singular values exceed ``rel_tol`` × the largest one."""
    return int((sv > rel_tol * sv.max()).sum()) if sv.numel() else 0


# -- saving ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavedAdapter:
    path: Path
    files: dict[str, int]  # file name -> bytes

    @property
    def bytes(self) -> int:
        return sum(self.files.values())

    @property
    def weights_bytes(self) -> int:
        return sum(n for f, n in self.files.items() if f.endswith((".safetensors", ".bin")))

    def __str__(self) -> str:
        return (f"{self.path}: {self.bytes / 2**20:.2f} MB on disk "
                f"({self.weights_bytes / 2**20:.2f} MB of weights)")


SavedModel = SavedAdapter  # what save_merged returns: the same record of files and sizes


def save_adapter(model, folder: str | Path, *, overwrite: bool = False) -> SavedAdapter:
    """``model.save_pretrained(folder)``: a PEFT model writes only its trained tensors and its
    config; the frozen base is not copied. Returns the files and their sizes.

    ``folder`` must be new or empty unless ``overwrite=True`` (then files of the same name
    are replaced, others left): an earlier adapter is never replaced silently.
    """
    _check_model(model, "save_adapter")
    if not hasattr(model, "peft_config"):
        raise ConfigError("model", type(model).__name__, "a PEFT model (LoRA, QLoRA, prefix "
                          "or prompt tuning)", "A plain transformers model has no adapter: "
                          "save it whole with save_merged(model, folder).")
    return _save(model, None, save_target(folder, overwrite, "save_adapter"), "save_adapter")


def save_merged(model, folder: str | Path, tokenizer=None, *,
                overwrite: bool = False) -> SavedModel:
    """Save a whole model, LoRA folded in: a folder that ``ftlab.models.load_model`` (or
    transformers' ``from_pretrained``) loads without PEFT.

    A PEFT LoRA model is merged on a copy first (``merged_copy``); a model already merged
    is saved as it is. The same guards as ``save_adapter``: a folder that holds files is
    replaced only with ``overwrite=True``; a file, an empty path, no model, or a place that
    cannot be written are refused in one line. Pass ``tokenizer`` to save it alongside.
    """
    _check_model(model, "save_merged")
    peft = hasattr(model, "peft_config")
    if peft and not lora_layers(model):
        raise ConfigError("model", type(model).__name__, "a LoRA (or QLoRA) model, or a "
                          "plain transformers model", "Only LoRA folds into the base "
                          "weights: save prefix or prompt tuning with save_adapter.")
    target = save_target(folder, overwrite, "save_merged")  # before the merge copies the model
    return _save(merged_copy(model) if peft else model, tokenizer, target, "save_merged")


def _check_model(model, what: str) -> None:
    if model is None or not hasattr(model, "save_pretrained"):
        raise ConfigError("model", model if model is None else type(model).__name__,
                          "a trained model", f"A run read back from the run cache has no "
                          f"model: take it with model, tok = model_of(run, lab), then "
                          f"{what}(model, folder).")


def _save(model, tokenizer, target: Path, what: str) -> SavedAdapter:
    """Write a checked target (``save_target``); a failure of the disk is said as such."""
    try:
        model.save_pretrained(target)
        if tokenizer is not None:
            tokenizer.save_pretrained(target)
    except OSError as e:  # a disk that fills up or goes read-only during the save
        raise EnvPathError(f"folder ({what})", _shown(target),
                           f"could not be written ({e.strerror or type(e).__name__})",
                           "Free some space or choose another folder; the save is "
                           "incomplete.") from None
    files = {str(p.relative_to(target)): p.stat().st_size
             for p in sorted(target.rglob("*")) if p.is_file()}
    return SavedAdapter(target, files)


def save_target(folder: str | Path, overwrite: bool, what: str, *,
                dry_run: bool = False) -> Path:
    """``folder`` checked as a save's target: a path, not empty, not a file, new or empty
    (unless ``overwrite``), and writable; created here (``dry_run``: checked, not created,
    so a save that loads a model first refuses a bad target before the load)."""
    variable = f"folder ({what})"
    example = (f"{what}(model, Path(run.path) / '{what.removeprefix('save_')}')"
               if what.startswith("save_") else f"{what}(run, 'exports/my-model')")
    if not isinstance(folder, (str, os.PathLike)):
        raise ConfigError("folder", folder, "a folder path (str or pathlib.Path)",
                          f"e.g. {example}.")
    if not str(os.fspath(folder)).strip():
        raise ConfigError("folder", folder, "a folder path that is not empty",
                          "An empty path would write into the current folder; name a new "
                          f"folder, e.g. {example}.")
    target = Path(folder).expanduser()
    try:
        exists, is_dir = target.exists(), target.is_dir()
        held = sorted(p.name for p in target.iterdir()) if is_dir else []
    except (OSError, ValueError) as e:  # too long a name, a NUL byte, no permission
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise EnvPathError(variable, _shown(target), f"cannot be used ({why})",
                           "Choose another folder.") from None
    if exists and not is_dir:
        raise EnvPathError(variable, _shown(target), "is a file, not a folder",
                           "Name a folder to save into (it is created if missing); the file "
                           "is left as it is.")
    if held and not overwrite:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise EnvPathError(variable, _shown(target), f"already holds {len(held)} "
                           f"file{'s' if len(held) > 1 else ''} ({shown})",
                           f"Choose a new folder, or pass overwrite=True to replace what "
                           f"{what} writes there.")
    if dry_run:
        return target
    try:
        return writable_folder(target, variable, "Choose a folder you may write to.")
    except EnvPathError as e:
        raise EnvPathError(variable, _shown(target), e.problem, e.fix) from None


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def tensor_bytes(model, trainable_only: bool = True) -> int:
    """Bytes of the (trainable) parameters in memory: what a saved adapter must hold."""
    return sum(p.numel() * p.element_size() for p in model.parameters()
               if p.requires_grad or not trainable_only)


# -- merging --------------------------------------------------------------------------------
def merged_copy(model):
    """A copy of a LoRA model with every adapter folded into its base weights
    (``W ← W + (alpha/r)·B·A``) and the adapter layers removed: a plain transformers model."""
    return copy.deepcopy(model).merge_and_unload()


@torch.no_grad()
def greedy_tokens(model, tok, chats: Sequence[Sequence[dict]],
                  max_new_tokens: int = 32) -> list[list[int]]:
    """Greedy answer tokens for each chat, one at a time (no padding)."""
    from ..generation import chat_prompt

    out = []
    device = next(model.parameters()).device
    with eval_mode(model):
        for chat in chats:
            ids = tok(chat_prompt(tok, chat), add_special_tokens=False,
                      return_tensors="pt")["input_ids"].to(device)
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
            out.append(gen[0, ids.shape[1]:].tolist())
    return out


@torch.no_grad()
def max_logit_difference(a, b, tok, chats: Sequence[Sequence[dict]]) -> float:
    """Largest absolute difference of next-token logits over the prompts' positions."""
    from ..generation import chat_prompt

    worst = 0.0
    for m in (a, b):
        m.eval()
    for chat in chats:
        ids = tok(chat_prompt(tok, chat), add_special_tokens=False,
                  return_tensors="pt")["input_ids"].to(next(a.parameters()).device)
        worst = max(worst, float((a(input_ids=ids).logits - b(input_ids=ids).logits)
                                 .abs().max()))
    return worst


@dataclass
class MergeCheck:
    """Adapter model against merged model on the same prompts."""

    identical: int  # answers whose greedy tokens are equal
    total: int
    max_logit_diff: float
    adapter_tokens: list[list[int]] = field(repr=False)
    merged_tokens: list[list[int]] = field(repr=False)
    merged: object = field(default=None, repr=False)

    @property
    def all_identical(self) -> bool:
        return self.identical == self.total

    def __str__(self) -> str:
        return (f"merged vs adapter: {self.identical}/{self.total} answers token-identical, "
                f"largest logit difference {self.max_logit_diff:.2e}")


def merge_check(model, tok, chats: Sequence[Sequence[dict]],
                max_new_tokens: int = 32) -> MergeCheck:
    """Merge a copy of ``model`` and compare greedy answers and logits with the adapter model."""
    merged = merged_copy(model)
    a = greedy_tokens(model, tok, chats, max_new_tokens)
    b = greedy_tokens(merged, tok, chats, max_new_tokens)
    diff = max_logit_difference(model, merged, tok, chats)
    same = sum(x == y for x, y in zip(a, b))
    return MergeCheck(same, len(chats), diff, a, b, merged)


# -- the model of a run ---------------------------------------------------------------------
def model_of(run, lab=None):
    """``(model, tokenizer)`` of a run: the live model if it has one, else its saved weights
    (``save_weights=True``), else trained again from its config (a run read back from the
    run cache has no model). ``lab`` supplies the evaluators and run folder of a lab's runs,
    so the retrained run is the same cache entry. Saved weights that would not load (cut,
    or removed) are named in one warning and the run is trained again; the folder is kept."""
    if run.model is not None:
        return run.model, run.tokenizer
    weights = Path(run.path) / "weights"
    if weights.is_dir() or run.config.save_weights:
        from ..runs import load_trained, weights_problems

        problems = weights_problems(weights, run.config)
        if not problems:
            return load_trained(run.path)
        warnings.warn(f"Run folder {run.path} has damaged weights: " + "; ".join(problems)
                      + ". Training the run again; the folder is kept.", RunFolderWarning,
                      stacklevel=2)
    from ..engine import train

    fresh = train(run.config, evaluators=getattr(lab, "watch", None),
                  runs_dir=getattr(lab, "runs_dir", None), progress=False)
    return fresh.model, fresh.tokenizer
