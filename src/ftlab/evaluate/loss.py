"""Validation loss and perplexity, computed exactly as training computes its loss.

Rows go through ``ftlab.data.formats.encode`` with the chat format, so only the answer
and its end-of-turn token count, as in training; the loss is the mean over those tokens.
``score`` is exp(-loss), the geometric-mean probability of a target token (in 0..1).

Training and validation ask the model for logits only at the positions the loss reads
(``loss_tail``): an answer is a few tokens at the
end of a long prompt (the system prompt alone is 20 tokens), and the output layer
(576 x 49,152 for SmolLM2) is a fifth of the model's work per position.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..data.formats import IGNORE_INDEX, encode
from ..generation import PROGRESS_DELAY_S
from ..models import accepts_logits_to_keep, eval_mode
from ..threads import share_cpus
from .result import EvalResult


def logits_from(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                first: int) -> torch.Tensor:
    """The logits of positions ``first`` to the end only (the model's own output layer run
    on those positions alone, where the model allows it)."""
    keep = input_ids.shape[1] - first
    if accepts_logits_to_keep(model):
        out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep)
    else:
        out = model(input_ids=input_ids, attention_mask=attention_mask)
    return out.logits[:, -keep:]


def loss_tail(labels: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Where the loss of a right-padded batch starts, and its targets from there:
    ``(first, shift_labels)``. Position t predicts label t+1; ``first`` is one before the
    first learned token of any row, so the logits of positions before it are never read.
    transformers' causal-LM loss accepts exactly these as ``logits_to_keep`` (the width
    minus ``first``) and ``shift_labels``. A row's first token is never a target: nothing
    precedes it (PEFT's prompt tuning alone would score it from its virtual tokens, in the
    whole-text format where it is learned)."""
    target = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    learned = (target != IGNORE_INDEX).any(dim=0)
    first = int(learned.nonzero()[0]) if learned.any() else labels.shape[1] - 1
    return first, target[:, first:].contiguous()


def learned_token_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the learned tokens of a right-padded batch,
    and how many there are: the causal-LM loss transformers computes (fp32 logits), from
    the logits of ``loss_tail``'s positions only."""
    first, target = loss_tail(labels)
    logits = logits_from(model, input_ids, attention_mask, first)
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((target != IGNORE_INDEX).sum())


@torch.no_grad()
def validation_loss(model, tok, rows: Sequence[dict], *, fmt: str = "chat",
                    max_length: int = 256, batch_size: int = 8,
                    progress: bool = True) -> EvalResult:
    """Token-weighted mean cross-entropy over the answers of ``rows``, and its perplexity."""
    encoded = [encode(r, tok, fmt, max_length) for r in rows]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    bar = tqdm(total=len(encoded), desc="validation loss", unit="row", disable=not progress,
               leave=False, delay=PROGRESS_DELAY_S)
    tokens, t0 = 0, time.perf_counter()
    with eval_mode(model):
        try:
            for i in range(0, len(encoded), batch_size):
                share_cpus()  # fewer threads while another process keeps a core busy
                chunk = encoded[i:i + batch_size]
                width = max(len(e["input_ids"]) for e in chunk)
                tokens += sum(len(e["input_ids"]) for e in chunk)
                pad = tok.pad_token_id if tok.pad_token_id is not None else 0
                ids = torch.tensor([e["input_ids"] + [pad] * (width - len(e["input_ids"]))
                                    for e in chunk], device=device)
                mask = torch.tensor([e["attention_mask"] + [0] * (width - len(e["input_ids"]))
                                     for e in chunk], device=device)
                labels = torch.tensor([e["labels"] + [IGNORE_INDEX] * (width - len(e["labels"]))
                                       for e in chunk], device=device)
                loss, n = learned_token_loss(model, ids, mask, labels)
                total += loss.item()
                count += n
                bar.update(len(chunk))
                rate = tokens / (time.perf_counter() - t0)
                bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)
        finally:
            bar.close()
    mean_loss = total / count if count else float("nan")
    return EvalResult("loss", math.exp(-mean_loss) if count else 0.0, len(rows),
                      extra={"loss": mean_loss, "perplexity": math.exp(mean_loss),
                             "tokens": count})
