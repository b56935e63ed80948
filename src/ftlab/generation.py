"""Batched greedy answers to chat prompts: what samples, evaluators and labs all read.

On a CPU a decode step streams every weight of the model once, whatever the batch, so
8 rows cost nearly what 64 do: answers come out fastest in the largest batch that fits
in memory. ``generate_answers`` therefore picks its batch from the machine
(``auto_batch_size``), sorts prompts by length so that a batch wastes little padding, and
returns the answers in the order of the prompts given.

Each batch shrinks as its answers end (``greedy_decode``): past a few rows a decode step costs
about as much per row as one token's forward pass, and without that every row would wait in
the batch, computed, until the longest answer had ended.

Greedy answers do not depend on the batch size in exact arithmetic. In floating point a
row's logits move in the last bits when the batch around it changes (other matrix shapes,
other padding), which can flip an argmax where two tokens are nearly tied: rare, and
measured by ``benchmarks/generation.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers.generation.streamers import BaseStreamer

from .models import accepts_logits_to_keep, eval_mode
from .threads import share_cpus

MAX_BATCH = 128  # beyond this a CPU is compute-bound: larger batches only add memory
MEMORY_FRACTION = 0.25  # of the memory available now, for one batch's cache and activations
PROGRESS_DELAY_S = 2.0  # progress bars appear only for work that takes longer than this


@dataclass
class Answer:
    """One generated answer. ``text`` has special tokens removed; ``raw`` keeps them."""

    prompt: str
    text: str
    raw: str
    stopped: bool  # ended with the end-of-turn token within the budget
    n_tokens: int
    token_ids: list[int] = field(default_factory=list, repr=False)  # generated, as decoded


def chat_prompt(tok, messages: Sequence[dict]) -> str:
    """The model's own chat template up to the assistant header (what inference sees)."""
    msgs = list(messages)
    if msgs and msgs[-1]["role"] == "assistant":
        msgs = msgs[:-1]
    return tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


def free_memory_bytes(device: torch.device | str = "cpu") -> int:
    """Memory available for new tensors on ``device`` now (CUDA: free on the card)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


def _dtype_bytes(model) -> int:
    try:
        return next(model.parameters()).element_size()
    except StopIteration:
        return 4


def _virtual_tokens(model) -> int:
    """Tokens a prefix- or prompt-tuning adapter adds in front of every row (0 otherwise)."""
    configs = getattr(model, "peft_config", None) or {}
    cfg = configs.get(getattr(model, "active_adapter", None)) if isinstance(configs, dict) else None
    return int(getattr(cfg, "num_virtual_tokens", 0) or 0)


def _text_config(model):
    c = model.config
    return c.get_text_config() if hasattr(c, "get_text_config") else c


def kv_bytes_per_token(model) -> int:
    """KV-cache bytes one token of one row holds: layers x 2 (keys, values) x kv-heads x
    head size x bytes (SmolLM2-135M in fp32: 30 x 2 x 3 x 64 x 4 = 46,080)."""
    c = _text_config(model)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    return c.num_hidden_layers * 2 * kv_heads * head_dim * _dtype_bytes(model)


def row_bytes(model, prompt_tokens: int, new_tokens: int) -> int:
    """Memory one row of a generation batch needs at its peak (an upper estimate): its KV
    cache, the prefill's activations (hidden states, MLP, the prompt's attention scores)
    and the fp32 logits of the last position; doubled, as the cache grows by concatenation
    (old and new copies coexist for a moment)."""
    c = _text_config(model)
    b = _dtype_bytes(model)
    tokens = prompt_tokens + new_tokens + _virtual_tokens(model)
    prefill = prompt_tokens * (4 * c.hidden_size + 3 * c.intermediate_size) * b \
        + c.num_attention_heads * prompt_tokens * tokens * b
    logits = 3 * c.vocab_size * 4
    return 2 * (kv_bytes_per_token(model) * tokens + prefill + logits)


def auto_batch_size(model, prompt_tokens: int, new_tokens: int, *,
                    budget_bytes: int | None = None, cap: int = MAX_BATCH) -> int:
    """The largest batch whose rows fit the memory budget (a quarter of what is free now),
    at most ``cap``: on a CPU, larger batches give more tokens per second up to there."""
    if budget_bytes is None:
        device = next(model.parameters()).device
        budget_bytes = int(free_memory_bytes(device) * MEMORY_FRACTION)
    return max(1, min(cap, budget_bytes // max(1, row_bytes(model, prompt_tokens, new_tokens))))


class _Progress:
    """At every decode step: fits the thread count to the CPUs free now
    (``threads.share_cpus``) and, with a bar, counts finished answers and tokens/s."""

    def __init__(self, bar):
        self.bar, self.tokens, self.t0 = bar, 0, time.perf_counter()

    def step(self, live: int, finished: int) -> None:
        share_cpus()
        if self.bar is None:
            return
        self.tokens += live
        self.bar.update(finished)
        rate = self.tokens / max(1e-9, time.perf_counter() - self.t0)
        self.bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)


class _Streamer(BaseStreamer):
    """``_Progress`` for ``model.generate``, which hands over the prompts, then each step's
    tokens for every row of the batch (rows that ended get padding)."""

    def __init__(self, progress: _Progress, eos: int):
        self.progress, self.eos = progress, eos
        self.done: torch.Tensor | None = None
        self.rows = 0

    def start(self, rows: int) -> None:
        self.done, self.rows = None, rows

    def put(self, value: torch.Tensor) -> None:
        if self.done is None:  # the first call hands over the prompts
            self.done = torch.zeros(self.rows, dtype=torch.bool)
            share_cpus()
            return
        live = ~self.done
        newly = live & (value.reshape(-1).cpu() == self.eos)
        self.done |= newly
        self.progress.step(int(live.sum()), int(newly.sum()))

    def end(self) -> None:
        if self.done is not None:  # rows that reached the limit
            self.progress.step(0, int((~self.done).sum()))


@torch.no_grad()
def greedy_decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  max_new_tokens: int, eos: int,
                  progress: _Progress | None = None) -> list[list[int]]:
    """Greedy answers to a left-padded batch, each row dropped from the batch once it ends.

    What ``model.generate(do_sample=False)`` computes (the same positions, masks, cache and
    float32 argmax), except that ``generate`` keeps computing a row that has ended until
    every row has, and past a few rows a decode step costs about as much per row as one
    token's forward pass. Here the batch shrinks as answers end: base-model answers vary
    from a few tokens to the budget, and the longest no longer keep every other row in it.
    Returns each row's new tokens, up to and including its end-of-turn token.
    """
    from transformers import DynamicCache

    keep_last = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    cache = DynamicCache(config=_text_config(model))
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    live = torch.ones_like(rows, dtype=torch.bool)  # of the rows still in the batch
    out: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    mask = attention_mask
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    ids = input_ids
    for step in range(max_new_tokens):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                       past_key_values=cache, use_cache=True, **keep_last).logits
        tokens = logits[:, -1].to(dtype=torch.float32).argmax(-1)
        for row, token in zip(rows[live].tolist(), tokens[live].tolist()):
            out[row].append(token)
        useful = int(live.sum())
        ended = live & (tokens == eos)
        live &= ~ended
        last = step == max_new_tokens - 1 or not bool(live.any())
        if progress is not None:  # (answers that reach the budget end with the last step)
            progress.step(useful, int(ended.sum()) + (int(live.sum()) if last else 0))
        if last:
            break
        # Dropping rows copies the cache: worth it once an eighth of the batch has ended.
        if int((~live).sum()) * 8 >= len(rows):
            keep = live.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, tokens, mask, positions = rows[keep], tokens[keep], mask[keep], positions[keep]
            live = live[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
        positions = positions[:, -1:] + 1
        ids = tokens[:, None]
    return out


@torch.no_grad()
def generate_answers(model, tok, chats: Sequence[Sequence[dict]], max_new_tokens: int = 48,
                     batch_size: int | None = None, progress: bool = False) -> list[Answer]:
    """Greedy answers for chats (a trailing assistant turn is dropped: that is the target).

    ``batch_size=None`` picks the largest batch that fits (``auto_batch_size``). Answers
    come back in the order of ``chats``. The tokenizer is only read, never reconfigured
    (rows are left-padded here), so a run on another thread may share it.
    """
    prompts = [chat_prompt(tok, c) for c in chats]
    if not prompts:
        return []
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    if batch_size is None:
        batch_size = auto_batch_size(model, len(ids[order[-1]]), max_new_tokens)
    device = next(model.parameters()).device
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    out: list[Answer | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc="generating", unit="answer", leave=False,
               delay=PROGRESS_DELAY_S) if progress else None
    meter = _Progress(bar)
    shrink = not _virtual_tokens(model)  # a prompt-learning adapter needs PEFT's generate
    with eval_mode(model):
        try:
            for b in range(0, len(order), batch_size):
                chunk = order[b:b + batch_size]
                width = max(len(ids[i]) for i in chunk)
                # left padding: generation continues every row from its last real token
                input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in chunk],
                                         device=device)
                mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i])
                                     for i in chunk], device=device)
                if shrink:
                    new = greedy_decode(model, input_ids, mask, max_new_tokens, eos, meter)
                else:
                    streamer = _Streamer(meter, eos)
                    streamer.start(len(chunk))
                    gen = model.generate(input_ids=input_ids, attention_mask=mask,
                                         max_new_tokens=max_new_tokens, do_sample=False,
                                         eos_token_id=eos, pad_token_id=pad, streamer=streamer)
                    new = gen[:, width:].tolist()
                for i, row in zip(chunk, new):
                    stopped = eos in row
                    row = row[:row.index(eos) + 1] if stopped else row
                    text = tok.decode(row, skip_special_tokens=True)
                    out[i] = Answer(prompt=prompts[i], text=text,
                                    raw=tok.decode(row), stopped=stopped, n_tokens=len(row),
                                    token_ids=row)
        finally:
            if bar is not None:
                bar.close()
    return out  # type: ignore[return-value]
