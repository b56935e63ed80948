"""Policy optimisation: the trainer part of a run with an ``rl`` section (GRPO).

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
lifecycle's (``lifecycle.py``): the same events (``StepLogged.metrics`` carries the ``rl.*``
numbers), run folder, Stop, progress bar, interrupts, extra callbacks and evaluators.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..answers import count_words
from ..arguments import bf16, schedule, trainer_arguments
from ..config import RunConfig
from ..data import load_splits
from ..errors import ConfigError
from ..events import EvalLogged, EventBus, SamplesLogged
from ..models import eval_mode, load_model, resolve_source
from ..rlhf import (
    GoldReward,
    RewardFunction,
    completion_text,
    make_prompts,
    make_proxy,
    policy_rows,
    question_of,
)
from .callbacks import EvalContext, Evaluator, StepEvents, run_evaluators
from .part import TrainerPart

__all__ = ["STEP_METRICS", "PolicyPart", "WordCount"]

# What TRL logs each step -> the run's metric names (``StepLogged.metrics``).
STEP_METRICS = {
    "rewards/gold/mean": "rl.gold",
    "rewards/words/mean": "rl.length",  # mean completion length in words (``count_words``)
    "completions/mean_length": "rl.length_tokens",  # the same in tokens
    "completions/clipped_ratio": "rl.truncated",  # share that hit max_completion_length
    "reward": "rl.optimised",  # what is optimised: proxy - length_penalty * words
    # mean per-token KL(policy || reference), TRL's k3 estimate; the knob is ``rl.kl``
    "kl": "rl.kl_measured",
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
                 evaluators: Mapping[str, Evaluator], run_dir: Path | None = None) -> None:
        self.bus, self.tok, self.splits, self.config = bus, tok, splits, config
        self.run_dir = run_dir
        self.evaluators = dict(evaluators)
        self.evals: list[dict] = []
        self.last_step = -1
        self._t0 = time.perf_counter()

    def evaluate(self, model, step: int, full: bool) -> None:
        if not self.evaluators:
            return
        ctx = EvalContext(step=step, config=self.config, splits=self.splits, full=full,
                          run_dir=self.run_dir)
        with eval_mode(model):
            metrics = run_evaluators(self.evaluators, model, self.tok, ctx)
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


class PolicyPart(TrainerPart):
    """TRL's ``GRPOTrainer`` on the run's prompts: the policy's adapters (``peft_config``)
    pushed towards the completions the proxy scored above their group's mean."""

    def prepare(self) -> None:
        cfg = self.cfg
        _check(cfg)
        self.label = f"GRPO ({cfg.method.name})"
        self.prompts = make_prompts(cfg.data.size, seed=cfg.seed,
                                    fact_fraction=cfg.rl.fact_fraction)
        self.splits = load_splits(cfg)  # the task's held-out rows, for evaluators (ctx.splits)
        self.proxy = make_proxy(cfg, self.prompts)
        self.gold = GoldReward(self.prompts, target_words=cfg.rl.gold_target_words)
        self.model, self.tokenizer = load_model(
            cfg.model, device=cfg.device, dtype=cfg.dtype,
            quantization=cfg.method.quantization(self.placement))
        self.peft_config = cfg.method.peft_config(self.model, resolve_source(cfg.model))
        self.step_metrics = {**STEP_METRICS, f"rewards/{self.proxy.name}/mean": "rl.proxy"}

    def callbacks(self, bus, run_dir: Path) -> tuple[list, list]:
        tok = self.tokenizer
        stop_ids = {i for i in (tok.eos_token_id, tok.pad_token_id,
                                tok.convert_tokens_to_ids("<|im_end|>")) if isinstance(i, int)}
        self.sampler = _Samples(bus, self.cfg, self.proxy, self.gold, stop_ids)
        self.samples = self.sampler.samples
        self.evaluations = PolicyEvaluations(bus, tok, self.splits, self.cfg, self.evaluators,
                                             run_dir)
        self.evals = self.evaluations.evals
        return [self.evaluations], []

    def build(self, callbacks, run_dir: Path):
        from datasets import Dataset
        from transformers import PrinterCallback
        from trl import GRPOConfig, GRPOTrainer

        cfg, rl, t = self.cfg, self.cfg.rl, self.cfg.train
        args = trainer_arguments(
            GRPOConfig, output_dir=str(run_dir), max_steps=t.max_steps,
            batch_size=t.batch_size * rl.generations, learning_rate=t.learning_rate,
            seed=cfg.seed, placement=self.placement, report_to=t.report_to,
            gradient_accumulation_steps=1,
            num_generations=rl.generations, max_completion_length=rl.max_completion_length,
            temperature=rl.temperature, beta=rl.kl,
            reward_weights=[1.0, 0.0, -rl.length_penalty], bf16=bf16(self.placement),
            activation_checkpointing=False,
            disable_dropout=True,  # the policy that sampled is the one scored: same log-probs
            log_completions=False, **schedule(t))
        trainer = GRPOTrainer(
            model=self.model, processing_class=self.tokenizer, args=args,
            reward_funcs=[self.proxy, self.gold, WordCount(self.sampler)],
            train_dataset=Dataset.from_list(policy_rows(self.prompts)),
            peft_config=self.peft_config, callbacks=list(callbacks))
        trainer.remove_callback(PrinterCallback)  # our events and progress bar report instead
        return trainer

    def run(self, trainer) -> None:
        self.evaluations.evaluate(trainer.model, 0, full=True)  # where the policy starts
        trainer.train()
        self.evaluations.evaluate(trainer.model, trainer.state.global_step, full=True)

    def final(self, step: int, events: StepEvents) -> dict:
        return _final(step, events, self.evaluations, self.proxy.name)

    def figures(self, trainer) -> dict:
        return {"reward": self.cfg.rl.reward,
                "completions_per_step": self.cfg.train.batch_size * self.cfg.rl.generations}


def _final(step: int, events: StepEvents, evals: PolicyEvaluations, proxy_name: str) -> dict:
    """First, last and peak of the per-step means, and where the peaks were.

    The numbers of step k score the completions of the policy after k-1 updates: ``first_*``
    is the base model's, ``last_*`` the policy's before its final update.
    """
    out: dict[str, Any] = {"steps": step,
                           "train_loss": events.steps[-1]["loss"] if events.steps else None}
    for short in ("proxy", "gold", "optimised", "length", "length_tokens", "kl_measured",
                  "truncated"):
        pts = [(s["step"], s["metrics"][f"rl.{short}"]) for s in events.steps
               if _finite(s.get("metrics", {}).get(f"rl.{short}"))]
        first, last = (pts[0][1], pts[-1][1]) if pts else (None, None)
        out[f"first_{short}"], out[f"last_{short}"] = first, last
        if short in ("proxy", "gold", "length", "kl_measured"):
            peak = max(pts, key=lambda p: p[1]) if pts else (None, None)
            out[f"peak_{short}_step"], out[f"peak_{short}"] = peak
    full = [e for e in evals.evals if e.get("full", True)]
    out.update({
        "proxy_reward": proxy_name,
        "length_unit": "words",  # rl.length; rl.length_tokens is the same in tokens
        "first_metrics": full[0]["metrics"] if full else {},
        "final_metrics": full[-1]["metrics"] if full else {},
        "step_time_s": statistics.median(events.step_times) if events.step_times else None,
    })
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not math.isnan(x)
