"""Broad capability benchmark scored by log-likelihood: no generation, no parsing.

Each choice is scored as the assistant's whole reply to the question (chat template with
an empty system turn, choice, end-of-turn token); the model picks the choice whose reply it
finds most likely (summed log-probability; on the base model this beat the per-token mean,
58% vs 49%). The empty system turn halves the tokens per item against the default one.
Reading probabilities instead of generated text means a model that forgot how to format
answers is not mistaken for one that forgot facts. The score comes with its chance
level and a 95% interval, so "above chance" is a claim one can check.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..data.benchmark import MCItem, load_benchmark
from ..generation import PROGRESS_DELAY_S, chat_prompt
from ..models import eval_mode
from ..threads import share_cpus
from .loss import logits_from
from .result import EvalResult, mean, wilson_interval


@torch.no_grad()
def choice_logprobs(model, tok, items: Sequence[MCItem], *, batch_size: int = 16,
                    progress: bool = True, prompt=None) -> list[list[tuple[float, int]]]:
    """(summed log-probability, token count) of every choice of every item."""
    prompt = prompt or (lambda q: chat_prompt(tok, [{"role": "system", "content": ""},
                                                    {"role": "user", "content": q}]))
    seqs = []  # (item index, choice index, prompt ids, choice ids)
    for i, item in enumerate(items):
        p_ids = tok(prompt(item.question), add_special_tokens=False)["input_ids"]
        for j, choice in enumerate(item.choices):
            c_ids = tok(choice + tok.eos_token, add_special_tokens=False)["input_ids"]
            seqs.append((i, j, p_ids, c_ids))
    order = sorted(range(len(seqs)), key=lambda k: len(seqs[k][2]) + len(seqs[k][3]))
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out: list[list[tuple[float, int]]] = [[(0.0, 0)] * len(it.choices) for it in items]
    bar = tqdm(total=len(order), desc="benchmark", unit="choice", disable=not progress,
               leave=False, delay=PROGRESS_DELAY_S)
    tokens, t0 = 0, time.perf_counter()
    with eval_mode(model):
        try:
            for b in range(0, len(order), batch_size):
                share_cpus()  # fewer threads while another process keeps a core busy
                batch = [seqs[k] for k in order[b:b + batch_size]]
                full = [p + c for _, _, p, c in batch]
                width = max(map(len, full))
                tokens += sum(map(len, full))
                ids = torch.tensor([f + [pad] * (width - len(f)) for f in full], device=device)
                mask = torch.tensor([[1] * len(f) + [0] * (width - len(f)) for f in full],
                                    device=device)
                first = min(len(p) for _, _, p, _ in batch) - 1  # no logits for prompts
                logits = logits_from(model, ids, mask, first)
                for row, (i, j, p, c) in enumerate(batch):
                    pos = torch.arange(len(p) - 1 - first, len(p) + len(c) - 1 - first,
                                       device=device)
                    lp = logits[row, pos].float().log_softmax(-1)
                    target = torch.tensor(c, device=device)
                    out[i][j] = (lp.gather(1, target[:, None]).sum().item(), len(c))
                bar.update(len(batch))
                rate = tokens / (time.perf_counter() - t0)
                bar.set_postfix_str(f"{rate:.0f} tok/s", refresh=False)
        finally:
            bar.close()
    return out


def run_benchmark(model, tok, items: Sequence[MCItem] | None = None, *,
                  batch_size: int = 16, progress: bool = True, keep: int = 8) -> EvalResult:
    """Accuracy per area and overall, beside chance (1 / number of choices) and a 95% CI."""
    items = list(load_benchmark() if items is None else items)
    scores = choice_logprobs(model, tok, items, batch_size=batch_size, progress=progress)
    by_area: dict[str, list[bool]] = defaultdict(list)
    examples = []
    for item, lps in zip(items, scores):
        pick = max(range(len(lps)), key=lambda j: lps[j][0])
        by_area[item.area].append(pick == item.answer)
        if pick != item.answer and len(examples) < keep:
            examples.append({"area": item.area, "question": item.question,
                             "expected": item.choices[item.answer],
                             "picked": item.choices[pick]})
    right = sum(sum(v) for v in by_area.values())
    n = len(items)
    breakdown = {a: mean(v) for a, v in sorted(by_area.items())}
    extra = {"areas": {a: {"score": mean(v), "n": len(v),
                           "ci95": list(wilson_interval(sum(v), len(v))),
                           "chance": mean(1 / len(it.choices) for it in items if it.area == a)}
                       for a, v in sorted(by_area.items())}}
    return EvalResult("benchmark", right / n if n else 0.0, n, breakdown,
                      chance=mean(1 / len(it.choices) for it in items),
                      ci95=wilson_interval(right, n), examples=examples, extra=extra)
