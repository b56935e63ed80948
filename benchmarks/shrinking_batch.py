"""Do answers come faster when a batch drops each row that has ended, and are they the same?

``generate_answers`` decodes with ``ftlab.generation.greedy_decode``, which drops a row from
the batch as soon as it has ended; before, it called ``model.generate``, which keeps every
row of a batch in it, computed and padded, until the longest answer has ended. On the
embedded model, in one process, each set of prompts is answered both ways, on the same
sorted batches (``generate`` first, then the shrinking batch, then ``generate`` again so that
a warm-up favours neither; ``generate``'s time is the better of its two):

- the 120 instruction probes at their token budget;
- the first ``--task-rows`` held-out test rows of every task at the task's budget.

Printed per set: wall time both ways, the speed-up, and the rows whose answers differ by a
token (where they part, the two candidates' logits computed alone, as
``benchmarks/generation.py`` reports them). Goal: faster, and no row differs.

    python benchmarks/shrinking_batch.py [--task-rows 32] [--sets probes arithmetic ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from generation import compare, timed  # noqa: E402 - benchmarks/generation.py

import ftlab  # noqa: E402
from ftlab.data.probes import load_probes  # noqa: E402
from ftlab.data.tasks import TASKS, held_out  # noqa: E402
from ftlab.evaluate.probes import PROBE_MAX_NEW_TOKENS  # noqa: E402
from ftlab.evaluate.task import MAX_NEW_TOKENS  # noqa: E402
from ftlab.generation import Answer, auto_batch_size, chat_prompt, generate_answers  # noqa: E402
from ftlab.models import eval_mode  # noqa: E402


@torch.no_grad()
def generate_whole_batches(model, tok, chats, max_new_tokens: int) -> list[Answer]:
    """``generate_answers`` as it was before (kept here as the reference): the same sorted,
    left-padded batches, each decoded by ``model.generate`` until its longest answer ends."""
    prompts = [chat_prompt(tok, c) for c in chats]
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    size = auto_batch_size(model, len(ids[order[-1]]), max_new_tokens)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    out: list = [None] * len(prompts)
    with eval_mode(model):
        for b in range(0, len(order), size):
            chunk = order[b:b + size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in chunk])
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i])
                                 for i in chunk])
            gen = model.generate(input_ids=input_ids, attention_mask=mask,
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=eos, pad_token_id=pad)
            for i, row in zip(chunk, gen[:, width:].tolist()):
                stopped = eos in row
                row = row[:row.index(eos) + 1] if stopped else row
                out[i] = Answer(prompt=prompts[i], text=tok.decode(row, skip_special_tokens=True),
                                raw=tok.decode(row), stopped=stopped, n_tokens=len(row),
                                token_ids=row)
    return out


def both_ways(model, tok, chats, budget: int) -> dict:
    whole, t_whole = timed(generate_whole_batches, model, tok, chats, budget)
    shrunk, t_shrunk = timed(generate_answers, model, tok, chats, max_new_tokens=budget)
    _, t_whole2 = timed(generate_whole_batches, model, tok, chats, budget)
    t_whole = min(t_whole, t_whole2)
    return {"rows": len(chats), "max_new_tokens": budget,
            "answer_tokens": sum(a.n_tokens for a in shrunk),
            "whole_batch_s": round(t_whole, 1), "shrinking_s": round(t_shrunk, 1),
            "speedup": round(t_whole / t_shrunk, 3), "same_answers": compare(model, tok, whole,
                                                                            shrunk)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=ftlab.DEFAULT_MODEL)
    ap.add_argument("--task-rows", type=int, default=32)
    ap.add_argument("--sets", nargs="*", help="only these (probes and task names)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    model, tok = ftlab.load_model(args.model, device="cpu", dtype="float32")
    out: dict = {"model": args.model}
    sets = {"probes": ([p.messages for p in load_probes()], PROBE_MAX_NEW_TOKENS)}
    for task in TASKS:
        sets[task] = ([r["messages"] for r in held_out(task).test[:args.task_rows]],
                      MAX_NEW_TOKENS[task])
    sets = {k: v for k, v in sets.items() if not args.sets or k in args.sets}
    for name, (chats, budget) in sets.items():
        out[name] = both_ways(model, tok, chats, budget)
        print(f"{name}:", {k: v for k, v in out[name].items() if k != "same_answers"},
              flush=True)
    done = [out[name] for name in sets]
    whole, shrunk = sum(s["whole_batch_s"] for s in done), sum(s["shrinking_s"] for s in done)
    out["total"] = {"rows": sum(s["rows"] for s in done),
                    "differ": sum(s["same_answers"]["differ"] for s in done),
                    "whole_batch_s": round(whole, 1), "shrinking_s": round(shrunk, 1),
                    "speedup": round(whole / shrunk, 3)}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
