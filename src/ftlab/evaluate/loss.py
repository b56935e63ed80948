"""Validation loss and perplexity, computed exactly as training computes its loss.

Rows go through ``ftlab.data.formats.encode`` with the chat format, so only the answer
and its end-of-turn token count, as in training; the loss is the mean over those tokens.
``score`` is exp(-loss), the geometric-mean probability of a target token (in 0..1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..data.formats import IGNORE_INDEX, encode
from ..generation import PROGRESS_DELAY_S
from ..models import eval_mode
from ..threads import share_cpus
from .result import EvalResult


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
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                target = labels[:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                    ignore_index=IGNORE_INDEX, reduction="sum")
                total += loss.item()
                count += int((target != IGNORE_INDEX).sum())
                bar.update(len(chunk))
                rate = tokens / (time.perf_counter() - t0)
                bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)
        finally:
            bar.close()
    mean_loss = total / count if count else float("nan")
    return EvalResult("loss", math.exp(-mean_loss) if count else 0.0, len(rows),
                      extra={"loss": mean_loss, "perplexity": math.exp(mean_loss),
                             "tokens": count})
