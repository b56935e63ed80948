"""Policy optimisation: ``train(config)`` with an ``rl`` section is a GRPO run, and a run.

TRL's ``GRPOTrainer`` samples ``rl.generations`` completions for each of
``train.batch_size`` prompts per step, scores them and pushes the policy (the method's
adapters) towards the completions that scored above their group's mean, with
``rl.kl`` · KL to the reference model in the loss. The reference is the base model
(adapters switched off; for ``full``, a frozen copy). LoRA and QLoRA start as the base, so
KL is 0 at the first step; prefix and prompt tuning start with their virtual tokens, so
their KL starts above 0.

Three reward functions score every completion; only the proxy is optimised:

- the proxy (``rl.reward``), weight 1, logged as ``rl.proxy``;
- the gold reward, weight 0 (watched only), logged as ``rl.gold``;
- the word count, weight ``-rl.length_penalty`` (a mitigation; 0 = off), logged as
  ``rl.length`` (mean completion length in words; ``rl.length_tokens`` in tokens).

TRL adds them weighted (``reward = Σ weight·score``) before the group advantage, so a
weight of 0 never reaches the gradient while TRL still logs the mean (``rewards/gold/mean``);
the length penalty is the same mechanism with a negative weight. Everything else is the
supervised engine's: the same events (``StepLogged.metrics`` carries the ``rl.*`` numbers),
run folder, Stop, progress bar, extra callbacks and evaluators.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from .answers import count_words
from .callbacks import (
    EvalContext,
    Evaluator,
    ProgressBar,
    ShareCpus,
    StepEvents,
    StopFlag,
    StopOnFlag,
    run_evaluators,
)
from .config import RunConfig
from .errors import ConfigError, TrainingError
from .events import EvalLogged, EventBus, Listener, RunEnded, RunStarted, SamplesLogged
from .memory import PeakMemory
from .methods import param_report
from .models import choose_placement, load_model, resolve_source
from .rlhf import (
    GoldReward,
    LengthProxyReward,
    Prompt,
    RewardFunction,
    completion_text,
    make_prompts,
    question_of,
)
from .runs import Run, RunWriter, cache_key

__all__ = ["STEP_METRICS", "WordCount", "make_proxy", "policy_rows", "train_policy"]

# What TRL logs each step -> the run's metric names (``StepLogged.metrics``).
STEP_METRICS = {
    "rewards/gold/mean": "rl.gold",
    "rewards/words/mean": "rl.length",  # mean completion length in words (``count_words``)
    "completions/mean_length": "rl.length_tokens",  # the same in tokens
    "completions/clipped_ratio": "rl.truncated",  # share that hit max_completion_length
    "reward": "rl.reward",  # what is optimised: proxy - length_penalty * words
    "kl": "rl.kl",  # mean per-token KL(policy || reference), TRL's k3 estimate
    "entropy": "rl.entropy",
}
# plus f"rewards/{proxy.name}/mean" -> "rl.proxy"

class WordCount(RewardFunction):
    """Completion length in words: the length penalty's reward function (weight
    ``-rl.length_penalty``, so 0 when off: then only logged, as ``rl.length``).

    Being called once per generated batch, it also hands the batch to ``on_batch``
    (which logs a few completions as samples).
    """

    name = "words"

    def __init__(self, on_batch=None) -> None:
        self.on_batch = on_batch

    def score(self, prompts, completions, **kwargs: Any) -> list[float]:
        scores = [float(count_words(completion_text(c))) for c in completions]
        if self.on_batch is not None:
            self.on_batch(prompts, completions, scores, **kwargs)
        return scores


def policy_rows(prompts: Sequence[Prompt]) -> list[dict]:
    """GRPO rows: the question as a chat with an empty system turn, and its ``answers``.

    The empty system turn replaces the template's default system prompt (about 20 tokens
    that every completion would otherwise be scored behind, as the learned reward model
    also leaves out); ``answers`` reaches the rewards as a keyword (``grpo_rows``).
    """
    return [{"prompt": [{"role": "system", "content": ""}, *p.chat()],
             "answers": list(p.answers)} for p in prompts]


_LEARNED: dict[str, Any] = {}  # trained reward models by their config: one per process
_LEARNED_LOCK = threading.Lock()


def make_proxy(cfg: RunConfig, prompts: Sequence[Prompt]) -> RewardFunction:
    """The proxy reward ``cfg.rl.reward`` names. The learned one is trained on first use
    (``ftlab.rlhf.train_reward_model``, about a minute on a CPU) and kept for the process."""
    if cfg.rl.reward == "length_proxy":
        return LengthProxyReward(prompts)
    from .rlhf import RewardModelConfig, train_reward_model

    rm_cfg = RewardModelConfig(model=cfg.model, p_longer=cfg.rl.labeller_p_longer,
                               seed=cfg.seed, preset=cfg.preset).resolved()
    key = json.dumps(asdict(rm_cfg), sort_keys=True)
    with _LEARNED_LOCK:
        if key not in _LEARNED:
            _LEARNED[key] = train_reward_model(rm_cfg)
        return _LEARNED[key]


class _Samples:
    """Logs a few of the completions a step generated, with their scores, as samples.

    Completions generated during step k come from the policy after k-1 updates, so they
    are logged at step k-1: the first ones (step 0) are the base model's answers.
    """

    def __init__(self, bus: EventBus, cfg: RunConfig, proxy: RewardFunction,
                 gold: RewardFunction, stop_ids: set[int]) -> None:
        self.bus, self.proxy, self.gold, self.stop_ids = bus, proxy, gold, stop_ids
        self.n, self.every = cfg.eval.samples or 0, cfg.eval.every or 0
        self.last_step = cfg.train.max_steps - 1
        self.group = cfg.rl.generations
        self.samples: list[dict] = []

    def due(self, step: int) -> bool:
        return self.n > 0 and (step == 0 or step == self.last_step
                               or (self.every > 0 and step % self.every == 0))

    def __call__(self, prompts, completions, words, *, trainer_state=None, answers=None,
                 completion_ids=None, **kwargs: Any) -> None:
        step = trainer_state.global_step if trainer_state is not None else 0
        if not self.due(step):
            return
        idx = list(range(0, len(completions), self.group))[: self.n]  # one per prompt
        pick = [prompts[i] for i in idx], [completions[i] for i in idx]
        keys = [answers[i] for i in idx] if answers is not None else None
        proxy = self.proxy.score(*pick, answers=keys)
        gold = self.gold.score(*pick, answers=keys)
        rows = []
        for j, i in enumerate(idx):
            ids = list(completion_ids[i]) if completion_ids is not None else []
            rows.append({"question": question_of(prompts[i]),
                         "expected": keys[j][0] if keys else "",
                         "answer": completion_text(completions[i]),
                         "stopped": bool(ids) and int(ids[-1]) in self.stop_ids,
                         "proxy": proxy[j], "gold": gold[j], "words": words[i]})
        ev = SamplesLogged(step=step, samples=rows)
        self.samples.append(ev.to_dict())
        self.bus.emit(ev)


class PolicyEvaluations(TrainerCallback):
    """The run's evaluators on the policy: before the first step and on the returned model
    (``full``: every evaluator), and every ``eval.every`` steps (``when="always"`` ones).

    A policy run has no validation loss: ``EvalLogged.val_loss`` is NaN and only the
    evaluators' namespaced metrics carry numbers. Without evaluators nothing is logged.
    """

    def __init__(self, bus: EventBus, tok, splits, config: RunConfig,
                 evaluators: Mapping[str, Evaluator]) -> None:
        self.bus, self.tok, self.splits, self.config = bus, tok, splits, config
        self.evaluators = dict(evaluators)
        self.evals: list[dict] = []
        self.last_step = -1
        self._t0 = time.perf_counter()

    def evaluate(self, model, step: int, full: bool) -> None:
        if not self.evaluators:
            return
        was_training = model.training
        model.eval()
        try:
            ctx = EvalContext(step=step, config=self.config, splits=self.splits, full=full)
            metrics = run_evaluators(self.evaluators, model, self.tok, ctx)
        finally:
            model.train(was_training)
        nan = float("nan")
        ev = EvalLogged(step=step, val_loss=nan, perplexity=nan, best_val_loss=nan,
                        best_step=0, elapsed_s=time.perf_counter() - self._t0,
                        metrics=metrics, full=full)
        self.last_step = step
        self.evals.append(ev.to_dict())
        self.bus.emit(ev)

    def on_step_end(self, args, state, control, model=None, **kw):
        every = self.config.eval.every
        if every and state.global_step % every == 0 and state.global_step < args.max_steps:
            self.evaluate(model, state.global_step, full=False)


def _check(cfg: RunConfig) -> None:
    """Refuse what a policy run cannot do, before any model is loaded."""
    if cfg.data.path is not None:
        raise ConfigError("data.path", cfg.data.path, "None for an RL run",
                          "An RL run's prompts come from ftlab.rlhf.make_prompts(data.size, "
                          "seed, rl.fact_fraction): questions whose answers the gold reward "
                          "can check.")
    if cfg.train.batch_size > cfg.data.size:
        raise ConfigError("train.batch_size", cfg.train.batch_size,
                          f"at most data.size ({cfg.data.size}) prompts per step",
                          "In an RL run train.batch_size counts prompts per step.")


def train_policy(
    cfg: RunConfig,
    *,
    listeners: Sequence[Listener] = (),
    stop: threading.Event | None = None,
    evaluators: Mapping[str, Evaluator] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> Run:
    """Optimise the policy ``cfg`` describes (``cfg`` resolved, ``cfg.rl`` set) with GRPO;
    return the run. Called by ``ftlab.train.train``, which takes the same arguments."""
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from .train import _explain, load_splits

    _check(cfg)
    rl, t = cfg.rl, cfg.train
    evaluators = dict(evaluators or {})
    placement = choose_placement(cfg.device, cfg.dtype)
    set_seed(cfg.seed)
    prompts = make_prompts(cfg.data.size, seed=cfg.seed, fact_fraction=rl.fact_fraction)
    splits = load_splits(cfg)  # the task's held-out rows, for evaluators (ctx.splits)
    proxy = make_proxy(cfg, prompts)
    gold = GoldReward(prompts, target_words=rl.gold_target_words)
    model, tok = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype,
                            quantization=cfg.method.quantization(placement))
    peft_config = cfg.method.peft_config(model, resolve_source(cfg.model))

    bus = EventBus(list(listeners))
    writer = RunWriter(cfg, placement.device, runs_dir)
    bus.subscribe(lambda e: writer.log(e.to_dict()) if e.kind != "start" else None)
    total = t.max_steps
    stop_ids = {i for i in (tok.eos_token_id, tok.pad_token_id,
                            tok.convert_tokens_to_ids("<|im_end|>")) if isinstance(i, int)}
    samples = _Samples(bus, cfg, proxy, gold, stop_ids)
    events = StepEvents(bus, total, step_metrics={**STEP_METRICS,
                                                  f"rewards/{proxy.name}/mean": "rl.proxy"})
    evals = PolicyEvaluations(bus, tok, splits, cfg, evaluators)
    stopper = StopOnFlag(stop or StopFlag())
    bar = ProgressBar(total, f"GRPO ({cfg.method.name})", progress)
    args = GRPOConfig(
        output_dir=str(writer.path),  # the trainer saves nothing itself (save_strategy="no")
        max_steps=total, per_device_train_batch_size=t.batch_size * rl.generations,
        gradient_accumulation_steps=1, num_generations=rl.generations,
        max_completion_length=rl.max_completion_length, temperature=rl.temperature,
        beta=rl.kl, reward_weights=[1.0, 0.0, -rl.length_penalty],
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, optim="adamw_torch", logging_steps=1,
        save_strategy="no", report_to=[], seed=cfg.seed, data_seed=cfg.seed,
        disable_tqdm=True, dataloader_num_workers=0, use_cpu=placement.device == "cpu",
        bf16=placement.dtype == torch.bfloat16, activation_checkpointing=False,
        disable_dropout=True,  # the policy that sampled is the one scored: same log-probs
        log_completions=False)
    trainer = GRPOTrainer(
        model=model, processing_class=tok, args=args,
        reward_funcs=[proxy, gold, WordCount(samples)],
        train_dataset=Dataset.from_list(policy_rows(prompts)), peft_config=peft_config,
        callbacks=[ShareCpus(), events, evals, stopper, bar, *callbacks])
    trainer.remove_callback(PrinterCallback)  # our events and progress bar report instead
    params = param_report(trainer.model, cfg.method.name)
    bus.emit(RunStarted(run_dir=str(writer.path), config=cfg.to_dict(), total_steps=total,
                        params=params.to_dict()))
    key = cache_key(cfg, evaluators)
    t0 = time.perf_counter()

    def record(status: str, error: str | None = None, **more: Any) -> dict:
        final = _final(trainer.state.global_step, events, evals, proxy.name, **more)
        writer.finish(status, {"status": status, "final": final, "cache_key": key},
                      error=error)
        bus.emit(RunEnded(status=status, step=trainer.state.global_step, error=error,
                          final=final))
        return final

    try:
        with PeakMemory(placement.device) as mem:
            evals.evaluate(trainer.model, 0, full=True)  # where the policy starts
            trainer.train()
            evals.evaluate(trainer.model, trainer.state.global_step, full=True)
    except BaseException as e:  # noqa: BLE001 - record every ending, then re-raise
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        msg = _explain(e, cfg, trainer.state.global_step)
        record(status, msg)
        bar.close()
        writer.close()
        if isinstance(e, KeyboardInterrupt):
            raise
        raise TrainingError(msg) from e
    bar.close()
    status = "stopped" if stopper.stopped else "completed"
    final = record(
        status, wall_s=time.perf_counter() - t0, peak_memory_bytes=mem.peak_bytes,
        peak_memory_above_start_bytes=mem.above_baseline_bytes, peak_memory_kind=mem.kind,
        params=params.to_dict(), device=placement.device, dtype=placement.dtype_name,
        reward=rl.reward, completions_per_step=t.batch_size * rl.generations)
    if cfg.save_weights:
        trainer.model.save_pretrained(writer.path / "weights")
        tok.save_pretrained(writer.path / "weights")
    writer.close()
    return Run(path=writer.path, config=cfg, status=status, env=writer.env, steps=events.steps,
               evals=evals.evals, samples=samples.samples, final=final, cache_key=key,
               model=trainer.model, tokenizer=tok, splits=splits)


def _final(step: int, events: StepEvents, evals: PolicyEvaluations, proxy_name: str,
           **more: Any) -> dict:
    """First, last and peak of the per-step means, and where the peaks were.

    The numbers of step k score the completions of the policy after k-1 updates: ``first_*``
    is the base model's, ``last_*`` the policy's before its final update.
    """
    out: dict[str, Any] = {"steps": step,
                           "train_loss": events.steps[-1]["loss"] if events.steps else None}
    for short in ("proxy", "gold", "reward", "length", "length_tokens", "kl", "truncated"):
        pts = [(s["step"], s["metrics"][f"rl.{short}"]) for s in events.steps
               if _finite(s.get("metrics", {}).get(f"rl.{short}"))]
        first, last = (pts[0][1], pts[-1][1]) if pts else (None, None)
        out[f"first_{short}"], out[f"last_{short}"] = first, last
        if short in ("proxy", "gold", "length", "kl"):
            peak = max(pts, key=lambda p: p[1]) if pts else (None, None)
            out[f"peak_{short}_step"], out[f"peak_{short}"] = peak
    full = [e for e in evals.evals if e.get("full", True)]
    out.update({
        "proxy_reward": proxy_name,
        "length_unit": "words",  # rl.length; rl.length_tokens is the same in tokens
        "first_metrics": full[0]["metrics"] if full else {},
        "final_metrics": full[-1]["metrics"] if full else {},
        "step_time_s": statistics.median(events.step_times) if events.step_times else None,
        **more,
    })
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)
