"""Batched greedy answers to chat prompts: what samples, evaluators and labs all read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass
class Answer:
    """One generated answer. ``text`` has special tokens removed; ``raw`` keeps them."""

    prompt: str
    text: str
    raw: str
    stopped: bool  # ended with the end-of-turn token within the budget
    n_tokens: int


def chat_prompt(tok, messages: Sequence[dict]) -> str:
    """The model's own chat template up to the assistant header (what inference sees)."""
    msgs = list(messages)
    if msgs and msgs[-1]["role"] == "assistant":
        msgs = msgs[:-1]
    return tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


@torch.no_grad()
def generate_answers(model, tok, chats: Sequence[Sequence[dict]], max_new_tokens: int = 48,
                     batch_size: int = 8, progress: bool = False) -> list[Answer]:
    """Greedy answers for chats (a trailing assistant turn is dropped: that is the target)."""
    prompts = [chat_prompt(tok, c) for c in chats]
    device = next(model.parameters()).device
    eos = tok.eos_token_id
    was_training, side = model.training, tok.padding_side
    model.eval()
    tok.padding_side = "left"  # generation continues every row from its last real token
    out: list[Answer] = []
    try:
        batches = range(0, len(prompts), batch_size)
        for i in tqdm(batches, desc="generating", disable=not progress, leave=False):
            chunk = prompts[i:i + batch_size]
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=eos, pad_token_id=tok.pad_token_id)
            for prompt, row in zip(chunk, gen[:, enc["input_ids"].shape[1]:].tolist()):
                stopped = eos in row
                row = row[:row.index(eos) + 1] if stopped else row
                out.append(Answer(prompt=prompt, text=tok.decode(row, skip_special_tokens=True),
                                  raw=tok.decode(row), stopped=stopped, n_tokens=len(row)))
    finally:
        tok.padding_side = side
        model.train(was_training)
    return out
