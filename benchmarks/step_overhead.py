"""What does ftlab's engine cost per step, over a bare PEFT + PyTorch loop?

All three train LoRA (r=8, all linear layers) on the embedded model on the same batch
(the training split is exactly one batch of 10, so every step sees the same tokens), with
the same learning rate and clipping, in this one process, taking turns so that machine
noise hits them alike:

- ``tutorial``: the loop every PEFT tutorial writes (the model's loss over every
  position's logits, PyTorch's default AdamW). Its step time is this machine's yardstick
  (the README quotes it where its times were measured);
- ``bare``: the same loop doing ftlab's work (logits only where the loss reads them,
  fused AdamW: ``ftlab.engine.supervised.Collator``, ``arguments.trainer_arguments``);
- ``ftlab``: ``ftlab.train``, the interval between consecutive step events: forward,
  backward, optimizer, data collation, logging and callbacks, everything a run pays for.

Goal: ``ratio`` (ftlab over bare: the engine's overhead) <= 1.05. ``speedup`` is the
tutorial loop's step over ftlab's.

    python benchmarks/step_overhead.py [--steps 12] [--rounds 2] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import DataCollatorForSeq2Seq

import ftlab
from ftlab.engine import build_model, load_splits, tokenize_splits, train
from ftlab.engine.supervised import Collator


def bare_loop(cfg: ftlab.RunConfig, steps: int, *, ftlab_work: bool) -> list[float]:
    """A plain loop on the same data: the tutorial's, or doing ftlab's work
    (``ftlab_work``)."""
    torch.manual_seed(cfg.seed)
    model, tok = build_model(cfg)
    rows, _ = tokenize_splits(cfg, load_splits(cfg), tok)
    collate = (Collator(tok, tail=True) if ftlab_work
               else DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.train.learning_rate, weight_decay=0.0,
                            fused=ftlab_work or None)
    model.train()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        batch = collate(rows)  # collated every step, as a data loader does
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return times


def ftlab_steps(cfg: ftlab.RunConfig, steps: int) -> list[float]:
    stamps: list[float] = []
    train(cfg.replace(steps=steps), progress=False,
          on_event=lambda e: stamps.append(time.perf_counter()) if e.kind == "step" else None)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--model", default=ftlab.DEFAULT_MODEL)
    args = ap.parse_args()
    # No evaluation inside the timed window: eval only before and after the loop.
    # 10 training rows (data.size counts training rows) in a batch of 10: one batch, the
    # same every step, in both loops.
    cfg = ftlab.RunConfig(model=args.model, method="lora", preset="cpu").replace(
        size=10, batch_size=10, eval_every=10_000, **{"eval.samples": 0}).resolved()
    tutorial, bare, ours = [], [], []
    for _ in range(args.rounds):  # warm-up steps dropped
        tutorial += bare_loop(cfg, args.steps, ftlab_work=False)[2:]
        bare += bare_loop(cfg, args.steps, ftlab_work=True)[2:]
        ours += ftlab_steps(cfg, args.steps)[2:]
    t, b, o = (statistics.median(x) for x in (tutorial, bare, ours))
    print(json.dumps({"model": args.model, "device": ftlab.models.choose_placement().device,
                      "threads": torch.get_num_threads(), "batch_size": cfg.train.batch_size,
                      "tutorial_step_s": round(t, 4), "bare_step_s": round(b, 4),
                      "ftlab_step_s": round(o, 4), "ratio": round(o / b, 3), "goal": 1.05,
                      "speedup": round(t / o, 3),
                      "samples": {"tutorial": len(tutorial), "bare": len(bare),
                                  "ftlab": len(ours)}}, indent=2))


if __name__ == "__main__":
    main()
