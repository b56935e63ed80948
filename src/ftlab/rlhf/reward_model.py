"""A learned proxy reward: a sequence-classifier reward model trained with TRL's RewardTrainer.

The base model gets a one-number head (``AutoModelForSequenceClassification``, num_labels=1)
and a LoRA adapter on its top layers; RewardTrainer fits it to the biased labeller's pairs
(``pairs.preference_pairs``) with the Bradley-Terry loss -log σ(r_chosen - r_rejected).
Nothing in the code mentions length: whatever length bias the model shows, it learned.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..knobs import knob, validate
from ..models import (
    TINY_MODEL,
    choose_placement,
    eval_mode,
    load_tokenizer,
    resolve_source,
    tiny_config,
)
from .pairs import Pair, preference_pairs
from .prompts import Prompt, completion_text, make_prompts, question_of
from .rewards import CompletionLike, PromptLike, RewardFunction

RM_PRESETS: dict[str, dict[str, Any]] = {
    # cpu: about a minute on 2 cores for the embedded model (see docs/rewards.md).
    "cpu": {"n_prompts": 60, "max_steps": 24, "batch_size": 8, "keep_layers": 10},
    # gpu: more pairs, more steps, still minutes.
    "gpu": {"n_prompts": 600, "max_steps": 300, "batch_size": 16, "keep_layers": 1000},
}


@dataclass
class RewardModelConfig:
    """The knobs of the learned proxy reward; ``None`` fields come from the preset."""

    model: str = knob("smollm2-135m", "Base model of the reward model: 'smollm2-135m' "
                      "(embedded), 'tiny' (random, for tests) or a folder.")
    p_longer: float = knob(0.7, "Chance that the labeller simply prefers the longer answer "
                           "(otherwise it prefers the correct, concise one).", low=0.0, high=1.0)
    n_prompts: int | None = knob(None, "Questions the pairs are built from; a fifth are held "
                                 "out to measure the reward model.", low=10, high=5000,
                                 optional=True)
    pairs_per_prompt: int = knob(2, "Preference pairs built per question.", low=1, high=16)
    max_steps: int | None = knob(None, "Optimizer steps of RewardTrainer.", low=1, high=100_000,
                                 optional=True)
    batch_size: int | None = knob(None, "Preference pairs per optimizer step.", low=1,
                                  high=512, optional=True)
    learning_rate: float = knob(1e-3, "Peak learning rate of the LoRA adapter and the head.",
                                low=0.0, low_open=True, high=1.0, log=True)
    lora_r: int = knob(8, "LoRA rank of the adapter.", low=1, high=256)
    keep_layers: int | None = knob(None, "Keep only the first N transformer layers of the base "
                                   "(a smaller, faster reward model; as many as the base has "
                                   "or more: all).", low=1, high=1000, optional=True)
    lora_layers: int | None = knob(4, "Adapt only the top N transformer layers (None: all). "
                                   "Gradients stop below them, so a step costs little more "
                                   "than a forward pass.", low=1, high=512, optional=True)
    seed: int = knob(0, "Seed of the prompts, the pairs, the head and the data order.",
                     low=0, high=2**31 - 1)
    preset: str | None = knob(None, "Sizes for 'cpu' or 'gpu' (None: from the device).",
                              choices=("cpu", "gpu"), optional=True)

    def resolved(self) -> RewardModelConfig:
        """A copy with every ``None`` size filled from the preset (picked by device if unset)."""
        validate(self)
        preset = self.preset or ("gpu" if torch.cuda.is_available() else "cpu")
        filled = {k: v for k, v in RM_PRESETS[preset].items() if getattr(self, k) is None}
        out = RewardModelConfig(**{**asdict(self), **filled, "preset": preset})
        validate(out)
        return out


@dataclass
class RewardModelReport:
    """What training measured. Accuracies are on pairs built from held-out questions."""

    train_time_s: float  # wall clock of trainer.train()
    train_cpu_s: float  # CPU time of this process meanwhile: about threads x wall when idle
    steps: int
    train_pairs: int
    heldout_pairs: int
    heldout_accuracy: float  # agrees with the (biased) labeller
    gold_agreement: float  # agrees with the gold reward's preference
    prefers_longer: float  # share of held-out pairs in which it scores the longer answer higher
    log_history: list[dict] = field(default_factory=list)


class LearnedReward(RewardFunction):
    """A trained reward model behind the same ``score(prompts, completions)`` as the others."""

    name = "learned_rm"

    def __init__(self, model, tokenizer, config: RewardModelConfig,
                 report: RewardModelReport | None = None, batch_size: int = 16) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.report, self.batch_size = report, batch_size

    def encode(self, prompt: PromptLike, completion: CompletionLike) -> list[int]:
        """Token ids of one scored chat, the same function that tokenized the training pairs."""
        return encode_chat(self.tokenizer, question_of(prompt), completion_text(completion))

    @torch.no_grad()
    def score(self, prompts: Sequence[PromptLike], completions: Sequence[CompletionLike],
              **kwargs: Any) -> list[float]:
        ids = [self.encode(p, c) for p, c in zip(prompts, completions, strict=True)]
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        out: list[float] = []
        with eval_mode(self.model):
            for i in range(0, len(ids), self.batch_size):
                chunk = ids[i:i + self.batch_size]
                width = max(len(x) for x in chunk)
                # Right padding, as in training: the head reads the last non-pad token.
                input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in chunk])
                mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk])
                logits = self.model(input_ids=input_ids.to(device),
                                    attention_mask=mask.to(device)).logits
                out.extend(logits[:, 0].float().tolist())
        return out

    def pair_metrics(self, pairs: Sequence[Pair]) -> dict[str, float]:
        """Accuracy against the labeller and against gold, and how often it picks the longer."""
        if not pairs:
            return {"accuracy": float("nan"), "gold_agreement": float("nan"),
                    "prefers_longer": float("nan")}
        prompts = [p.prompt for p in pairs] * 2
        scores = self.score(prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        n = len(pairs)
        picks_chosen = [scores[i] > scores[n + i] for i in range(n)]
        return {
            "accuracy": statistics.fmean(picks_chosen),
            "gold_agreement": statistics.fmean(c == p.chose_gold
                                               for c, p in zip(picks_chosen, pairs)),
            "prefers_longer": statistics.fmean(c == p.chose_longer
                                               for c, p in zip(picks_chosen, pairs)),
        }


def encode_chat(tok, question: str, answer: str) -> list[int]:
    """The chat template with an empty system turn: the default system prompt would add ~16
    tokens to every sequence and tell the reward model nothing."""
    messages = [{"role": "system", "content": ""}, {"role": "user", "content": question},
                {"role": "assistant", "content": answer}]
    return tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]


def load_reward_base(spec: str, seed: int = 0, keep_layers: int | None = None):
    """The base model as a one-output sequence classifier, and its tokenizer.

    ``keep_layers`` keeps only the first N transformer layers: a smaller reward model whose
    forward pass (most of a training step) costs N/total of the full one.
    """
    from transformers import AutoModelForSequenceClassification

    tok = load_tokenizer(spec)
    placement = choose_placement()
    torch.manual_seed(seed)  # the new score head is random
    if spec == TINY_MODEL:
        cfg = tiny_config(len(tok))
        cfg.num_labels = 1
        model = AutoModelForSequenceClassification.from_config(cfg, dtype=placement.weight_dtype)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_source(spec), num_labels=1, dtype=placement.weight_dtype)
    if keep_layers is not None and keep_layers < model.config.num_hidden_layers:
        model.model.layers = model.model.layers[:keep_layers]
        model.config.num_hidden_layers = keep_layers
    model.config.pad_token_id = tok.pad_token_id
    return model.to(placement.device), tok


def _peft_config(config: RewardModelConfig, n_layers: int):
    from peft import LoraConfig, TaskType

    layers = None
    if config.lora_layers is not None and config.lora_layers < n_layers:
        layers = list(range(n_layers - config.lora_layers, n_layers))
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=2 * config.lora_r,
                      lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"],
                      layers_to_transform=layers, modules_to_save=["score"])


def _tokenized(tok, pair: Pair) -> dict:
    # RewardTrainer takes pre-tokenized pairs as they are: scoring then reads the same ids.
    question = question_of(pair.prompt)
    return {"chosen_ids": encode_chat(tok, question, pair.chosen),
            "rejected_ids": encode_chat(tok, question, pair.rejected)}


def split_prompts(config: RewardModelConfig) -> tuple[list[Prompt], list[Prompt]]:
    """Train and held-out questions (80/20): held-out pairs never share a question with training."""
    prompts = make_prompts(config.n_prompts, seed=config.seed)
    n_heldout = max(2, len(prompts) // 5)
    return prompts[n_heldout:], prompts[:n_heldout]


def train_reward_model(config: RewardModelConfig | None = None,
                       callbacks: Sequence[Any] = (),
                       on_log: Callable[[dict], None] | None = None) -> LearnedReward:
    """Build the biased pairs, train the reward model with TRL, measure it on held-out pairs."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from ..arguments import bf16, trainer_arguments  # the settings every trainer shares

    cfg = (config or RewardModelConfig()).resolved()
    train_prompts, heldout_prompts = split_prompts(cfg)
    train_pairs = preference_pairs(train_prompts, cfg.p_longer, cfg.pairs_per_prompt, cfg.seed)
    heldout_pairs = preference_pairs(heldout_prompts, cfg.p_longer, cfg.pairs_per_prompt,
                                     cfg.seed + 1)
    if cfg.batch_size > len(train_pairs):
        raise ConfigError("batch_size", cfg.batch_size, f"at most {len(train_pairs)} (the "
                          "number of training pairs)", "Use more prompts or a smaller batch.")
    model, tok = load_reward_base(cfg.model, cfg.seed, cfg.keep_layers)
    placement = choose_placement()

    class _Relay(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if on_log is not None and logs:
                on_log({"step": state.global_step, **logs})

    with tempfile.TemporaryDirectory(prefix="ftlab-rm-") as out_dir:
        args = trainer_arguments(
            RewardConfig, output_dir=out_dir, max_steps=cfg.max_steps,
            batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, seed=cfg.seed,
            placement=placement, lr_scheduler_type="constant", bf16=bf16(placement),
            max_length=256,
            activation_checkpointing=False)  # TRL turns it on; these models are small
        trainer = RewardTrainer(
            model=model, args=args, processing_class=tok,
            train_dataset=Dataset.from_list([_tokenized(tok, p) for p in train_pairs]),
            peft_config=_peft_config(cfg, model.config.num_hidden_layers),
            callbacks=[_Relay(), *callbacks])
        trainer.remove_callback(PrinterCallback)
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.train()
        train_time = time.perf_counter() - start
        train_cpu = time.process_time() - start_cpu
    rm = LearnedReward(trainer.model, tok, cfg)
    measured = rm.pair_metrics(heldout_pairs)
    rm.report = RewardModelReport(
        train_time_s=train_time, train_cpu_s=train_cpu, steps=trainer.state.global_step,
        train_pairs=len(train_pairs), heldout_pairs=len(heldout_pairs),
        heldout_accuracy=measured["accuracy"], gold_agreement=measured["gold_agreement"],
        prefers_longer=measured["prefers_longer"], log_history=list(trainer.state.log_history))
    return rm
