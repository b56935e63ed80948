"""How fast do the evaluators generate, and do they still give the same answers?

Three measurements on the embedded model, in one process:

1. **tokens/s against the batch size.** The 120 instruction probes, ``--sweep-tokens`` new
   tokens, at batch sizes ``--sizes`` and at the batch the evaluators now choose
   (``auto``). Useful tokens/s counts answer tokens up to the end-of-turn token; the
   padding a finished row keeps producing does not count.
2. **The probe suite before and after.** The 120 probes at their token budget
   (``PROBE_MAX_NEW_TOKENS``): the generation as it was (batch 8, prompts in the given
   order, the tokenizer switched to left padding) against ``run_probes``'s own generation,
   wall time and pass rate. Goal: at least 3x faster, the same pass rate.
3. **Token-by-token comparison.** Probes and the test rows of every task, before vs
   after. Where an answer differs, the first differing token is found and the two
   candidate tokens' logits are compared in a batch of one on the shared prefix: a gap
   near zero means an fp32 near-tie, flipped by the batch around the row.

    python benchmarks/generation.py [--sizes 8 16 32 64] [--task-rows 32] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import ftlab
from ftlab.data.probes import load_probes
from ftlab.data.tasks import TASKS, held_out
from ftlab.evaluate.probes import PROBE_MAX_NEW_TOKENS, score_probes
from ftlab.evaluate.task import MAX_NEW_TOKENS, task_score
from ftlab.generation import Answer, auto_batch_size, chat_prompt, generate_answers
from ftlab.threads import _proc_stat_busy


@torch.no_grad()
def generate_before(model, tok, chats, max_new_tokens: int, batch_size: int = 8) -> list[Answer]:
    """``generate_answers`` as it was before batches were chosen by the machine (kept here
    verbatim as the reference): fixed batches in the given order, tokenizer left-padding."""
    prompts = [chat_prompt(tok, c) for c in chats]
    eos = tok.eos_token_id
    was_training, side = model.training, tok.padding_side
    model.eval()
    tok.padding_side = "left"
    out: list[Answer] = []
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i:i + batch_size]
            enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=eos, pad_token_id=tok.pad_token_id)
            for prompt, row in zip(chunk, gen[:, enc["input_ids"].shape[1]:].tolist()):
                stopped = eos in row
                row = row[:row.index(eos) + 1] if stopped else row
                out.append(Answer(prompt=prompt, text=tok.decode(row, skip_special_tokens=True),
                                  raw=tok.decode(row), stopped=stopped, n_tokens=len(row),
                                  token_ids=row))
    finally:
        tok.padding_side = side
        model.train(was_training)
    return out


NOISE: list[float] = []  # CPUs' worth of time other processes used during each timing


def timed(fn, *args, **kwargs):
    """``fn``'s result and wall time; notes how busy other processes kept the machine."""
    t, busy, own = time.perf_counter(), _proc_stat_busy(), time.process_time()
    out = fn(*args, **kwargs)
    wall = time.perf_counter() - t
    NOISE.append(max(0.0, (_proc_stat_busy() - busy) - (time.process_time() - own)) / wall)
    return out, wall


def useful_tokens(answers: list[Answer]) -> int:
    return sum(a.n_tokens for a in answers)


@torch.no_grad()
def near_tie(model, tok, answer_a: Answer, answer_b: Answer) -> dict:
    """Where two answers to one prompt part: the logits of both candidate tokens, computed
    alone (batch of one, no padding) on the prompt and the shared prefix."""
    a, b = answer_a.token_ids, answer_b.token_ids
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if k >= min(len(a), len(b)):
        return {"first_difference": k, "note": "one answer is a prefix of the other"}
    ids = tok(answer_a.prompt, add_special_tokens=False)["input_ids"] + a[:k]
    logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    top2 = logits.topk(2)
    return {"first_difference": k, "tokens": [tok.decode([a[k]]), tok.decode([b[k]])],
            "logit_gap": round(float(logits[a[k]] - logits[b[k]]), 5),
            "top2_gap_alone": round(float(top2.values[0] - top2.values[1]), 5),
            "logit_scale": round(float(logits.abs().max()), 2)}


def compare(model, tok, before: list[Answer], after: list[Answer]) -> dict:
    differ = [i for i, (x, y) in enumerate(zip(before, after)) if x.token_ids != y.token_ids]
    return {"rows": len(before), "differ": len(differ),
            "details": [{"row": i, **near_tie(model, tok, before[i], after[i])} for i in differ]}


def sweep(model, tok, chats, sizes: list[int], new_tokens: int) -> dict:
    prompt_len = max(len(tok(chat_prompt(tok, c), add_special_tokens=False)["input_ids"])
                     for c in chats)
    auto = auto_batch_size(model, prompt_len, new_tokens)
    rows = {}
    for size in [*sizes, None]:
        answers, wall = timed(generate_answers, model, tok, chats, max_new_tokens=new_tokens,
                              batch_size=size)
        key = "auto" if size is None else str(size)
        rows[key] = {"batch": min(auto, len(chats)) if size is None else size,
                     "wall_s": round(wall, 1), "useful_tokens": useful_tokens(answers),
                     "tokens_per_s": round(useful_tokens(answers) / wall, 1)}
        print(f"  batch {key:>4}: {rows[key]}", flush=True)
    best = max((r for k, r in rows.items() if k != "auto"), key=lambda r: r["tokens_per_s"])
    return {"new_tokens": new_tokens, "prompts": len(chats), "by_batch": rows,
            "best_measured": best["batch"],
            "auto_over_best": round(rows["auto"]["tokens_per_s"] / best["tokens_per_s"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=ftlab.DEFAULT_MODEL)
    ap.add_argument("--sizes", type=int, nargs="*", default=[8, 16, 32, 64])
    ap.add_argument("--sweep-tokens", type=int, default=32)
    ap.add_argument("--probe-tokens", type=int, default=PROBE_MAX_NEW_TOKENS)
    ap.add_argument("--task-rows", type=int, default=32, help="test rows per task compared")
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    model, tok = ftlab.load_model(args.model, device="cpu", dtype="float32")
    probes = load_probes()
    chats = [p.messages for p in probes]
    out: dict = {"model": args.model, "threads": torch.get_num_threads(),
                 "thread_setup": ftlab.threads.CHOICE}

    if not args.skip_sweep:
        print("1. useful tokens/s by batch size", flush=True)
        out["sweep"] = sweep(model, tok, chats, args.sizes, args.sweep_tokens)

    print("2. probe suite, before (batch 8, given order) and after (auto)", flush=True)
    before, t_before = timed(generate_before, model, tok, chats, args.probe_tokens)
    after, t_after = timed(generate_answers, model, tok, chats, max_new_tokens=args.probe_tokens)
    r_before, r_after = score_probes(probes, before), score_probes(probes, after)
    out["probes"] = {
        "n": len(probes), "max_new_tokens": args.probe_tokens,
        "before": {"wall_s": round(t_before, 1), "pass_rate": round(r_before.score, 4),
                   "tokens_per_s": round(useful_tokens(before) / t_before, 1)},
        "after": {"wall_s": round(t_after, 1), "pass_rate": round(r_after.score, 4),
                  "tokens_per_s": round(useful_tokens(after) / t_after, 1)},
        "speedup": round(t_before / t_after, 2), "goal": 3.0,
        "same_answers": compare(model, tok, before, after)}
    print(f"  {json.dumps({k: v for k, v in out['probes'].items() if k != 'same_answers'})}",
          flush=True)

    print("3. task rows, before and after", flush=True)
    out["tasks"] = {}
    for task in TASKS:
        rows = held_out(task).test[:args.task_rows]
        chats_t = [r["messages"] for r in rows]
        budget = MAX_NEW_TOKENS[task]
        b, tb = timed(generate_before, model, tok, chats_t, budget)
        a, ta = timed(generate_answers, model, tok, chats_t, max_new_tokens=budget)
        out["tasks"][task] = {
            "rows": len(rows), "wall_s_before": round(tb, 1), "wall_s_after": round(ta, 1),
            "score_before": round(task_score(model, tok, rows, task, answers=b,
                                             progress=False).score, 4),
            "score_after": round(task_score(model, tok, rows, task, answers=a,
                                            progress=False).score, 4),
            "same_answers": compare(model, tok, b, a)}
        print(f"  {task}: {out['tasks'][task]}", flush=True)
    out["differ_total"] = out["probes"]["same_answers"]["differ"] + sum(
        t["same_answers"]["differ"] for t in out["tasks"].values())
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["others_cpus_max"] = round(max(NOISE), 2)  # 0 on a quiet machine
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
