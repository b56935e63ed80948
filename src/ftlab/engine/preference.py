"""Preference tuning: the trainer part of a run with a ``pref`` section (DPO and relatives).

A preference run learns from pairs of answers to one prompt, one preferred (``chosen``) over
the other (``rejected``), with no reward model and no sampling: the loss raises the policy's
log-probability of the chosen answer relative to the rejected one. The objectives differ in
what they compare against (``LOSSES``):

- ``dpo`` (Rafailov et al. 2023) and ``ipo`` (Azar et al. 2023): the policy's log-ratio to a
  frozen reference model (the base: adapters off; for ``full``, a frozen copy);
- ``kto`` (Ethayarajh et al. 2024): unpaired answers, each marked good or bad, against the
  reference;
- ``orpo`` (Hong et al. 2024): no reference; the odds ratio added to the SFT loss on chosen;
- ``simpo`` (Meng et al. 2024): no reference; the *mean* log-probability per token, so a
  longer answer is not worth more by being longer.

Every objective is TRL's (``DPOTrainer``, ``KTOTrainer``; ``trl.experimental``'s ``CPOTrainer``
with ``loss_type="simpo"`` and ``ORPOTrainer``), none is written here. Everything else is the
lifecycle's (``lifecycle.py``): events, run folder, cache, Stop, progress bar, evaluators.
Each step logs the implicit reward margin on its batch (``pref.margin``) and how often
chosen beats rejected (``pref.accuracy``; not for KTO's unpaired rows); every evaluation,
the trainer's own, gives the same on held-out pairs (``pairs.margin``, ``pairs.accuracy``).
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arguments import bf16, schedule, trainer_arguments
from ..config import RunConfig
from ..data import load_splits
from ..errors import ConfigError, DatasetError
from ..models import load_model, resolve_source
from ..rlhf import Pair, heldout_questions, make_prompts, preference_pairs
from .callbacks import Evaluations, StepEvents
from .distributed import per_device
from .part import TrainerPart

__all__ = ["LOSSES", "PreferenceLoss", "PreferencePart", "pair_rows"]


@dataclass(frozen=True)
class PreferenceLoss:
    """What one objective needs and how TRL runs it."""

    name: str
    trainer: str  # "module:Class" of TRL's trainer; its config is the same name with Config
    needs_reference: bool
    paired: bool  # False: KTO's unpaired good/bad rows
    options: tuple[tuple[str, Any], ...] = ()
    # Checked on the tiny and the embedded model: prefix tuning fails in every TRL preference
    # trainer (its virtual keys do not fit the attention mask), prompt tuning in the
    # experimental ones (logits longer than labels by the virtual tokens).
    methods: tuple[str, ...] = ("lora", "qlora", "full", "prompt")

    def classes(self) -> tuple[type, type]:
        import importlib

        module, name = self.trainer.split(":")
        mod = importlib.import_module(module)
        return getattr(mod, name.replace("Trainer", "Config")), getattr(mod, name)


LOSSES: dict[str, PreferenceLoss] = {
    # needs_reference: every objective not in config.REFERENCE_FREE (a test holds them equal)
    "dpo": PreferenceLoss("dpo", "trl:DPOTrainer", True, True, (("loss_type", ["sigmoid"]),)),
    "ipo": PreferenceLoss("ipo", "trl:DPOTrainer", True, True, (("loss_type", ["ipo"]),)),
    "kto": PreferenceLoss("kto", "trl:KTOTrainer", True, False),
    "orpo": PreferenceLoss("orpo", "trl.experimental.orpo:ORPOTrainer", False, True,
                           methods=("lora", "qlora", "full")),
    "simpo": PreferenceLoss("simpo", "trl.experimental.cpo:CPOTrainer", False, True,
                            (("loss_type", "simpo"), ("cpo_alpha", 0.0)),
                            methods=("lora", "qlora", "full")),
}

# What TRL logs each step -> the run's metric names (``StepLogged.metrics``).
STEP_METRICS = {
    "rewards/margins": "pref.margin",  # implicit reward of chosen minus rejected
    "rewards/accuracies": "pref.accuracy",  # share of pairs where chosen scores higher
    "rewards/chosen": "pref.chosen",
    "rewards/rejected": "pref.rejected",
    "logps/chosen": "pref.logp_chosen",
    "logps/rejected": "pref.logp_rejected",
}
# The same on the held-out pairs, at every evaluation (``EvalLogged.metrics``).
EVAL_METRICS = {f"eval_{key}": name.replace("pref.", "pairs.")
                for key, name in STEP_METRICS.items()}


def reference_of(cfg: RunConfig) -> str:
    """``pref.reference`` with ``auto`` decided: live where the loss needs one, else none."""
    ref, loss = cfg.pref.reference, LOSSES[cfg.pref.loss]
    if ref == "auto":
        return "live" if loss.needs_reference else "none"
    return ref


def _check(cfg: RunConfig) -> None:
    """Refuse what a preference run cannot do, before any model is loaded."""
    pref, loss = cfg.pref, LOSSES[cfg.pref.loss]
    if cfg.data.path is not None:
        raise ConfigError("data.path", cfg.data.path, "None for a preference run",
                          "A preference run reads pairs: set pref.path to a JSONL file of "
                          '{"prompt", "chosen", "rejected"} rows, or leave it unset for the '
                          "labeller's pairs (ftlab.rlhf.preference_pairs).")
    if cfg.method.name not in loss.methods:
        raise ConfigError("method", cfg.method.name, "one of " + ", ".join(map(repr, loss.methods))
                          + f" for pref.loss = {pref.loss!r}",
                          "Prefix tuning's virtual keys do not fit TRL's preference trainers "
                          "(a shape error inside the attention), nor prompt tuning's virtual "
                          "tokens ORPO's and SimPO's; use LoRA, or DPO for prompt tuning.")
    ref = reference_of(cfg)
    if loss.needs_reference and ref == "none":
        raise ConfigError("pref.reference", pref.reference, "live or precomputed for "
                          f"pref.loss = {pref.loss!r}",
                          f"{pref.loss.upper()} measures the policy against a reference model; "
                          "only orpo and simpo train without one.")
    if not loss.needs_reference and ref != "none":
        raise ConfigError("pref.reference", pref.reference, f"none (or auto) for pref.loss = "
                          f"{pref.loss!r}", f"{pref.loss.upper()} uses no reference model.")
    if ref == "precomputed" and pref.loss == "kto":
        raise ConfigError("pref.reference", pref.reference, "live for pref.loss = 'kto'",
                          "ftlab runs KTO with a live reference only (its precomputed KL "
                          "terms are not checked here); DPO and IPO can precompute.")
    if pref.loss == "kto" and per_device(cfg.train.batch_size) < 2:
        raise ConfigError("train.batch_size", cfg.train.batch_size, "at least 2 answers per "
                          "process for pref.loss = 'kto'",
                          "KTO estimates its KL term from mismatched answers within a batch, "
                          "so a batch of one has none.")
    if pref.ld_alpha is not None and pref.loss != "dpo":
        raise ConfigError("pref.ld_alpha", pref.ld_alpha, f"None for pref.loss = {pref.loss!r}",
                          "Length desensitisation is an option of DPO; simpo is the "
                          "length-normalised objective without a reference.")


def pair_rows(pairs: list[Pair] | list[dict], paired: bool = True) -> list[dict]:
    """TRL's conversational rows: ``prompt`` / ``chosen`` / ``rejected`` message lists, or for
    KTO each answer alone with its ``label`` (chosen: True, rejected: False).

    The prompt starts with an empty system turn, as GRPO's do (``policy_rows``): the template's
    default system prompt would put every answer behind 20 more tokens.
    """
    rows = []
    for p in pairs:
        prompt, chosen, rejected = ((p.prompt, p.chosen, p.rejected) if isinstance(p, Pair)
                                    else ([{"role": "user", "content": p["prompt"]}],
                                          p["chosen"], p["rejected"]))
        if isinstance(p, dict) and p.get("system"):
            prompt = [{"role": "system", "content": p["system"]}, *prompt]
        elif not prompt or prompt[0]["role"] != "system":
            prompt = [{"role": "system", "content": ""}, *prompt]
        if paired:
            rows.append({"prompt": prompt,
                         "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})
        else:
            rows += [{"prompt": prompt, "completion": [{"role": "assistant", "content": c}],
                      "label": good} for c, good in ((chosen, True), (rejected, False))]
    return rows


def unpaired_rows(rows: list[dict]) -> list[dict]:
    """A file's KTO rows (``prompt``, ``completion``, ``label``) as TRL's conversational rows."""
    out = []
    for r in rows:
        prompt = [{"role": "system", "content": r.get("system", "")},
                  {"role": "user", "content": r["prompt"]}]
        out.append({"prompt": prompt,
                    "completion": [{"role": "assistant", "content": r["completion"]}],
                    "label": r["label"]})
    return out


def split_pairs(cfg: RunConfig) -> tuple[list[dict], list[dict]]:
    """Training and held-out rows in TRL's form, held out by question: a fifth of the
    questions (at least one) and every pair on them, so no question is on both sides.

    The labeller's pairs come from ``data.size`` prompts; a file's rows are grouped by
    prompt and the groups shuffled with the run's seed. Training never sees a question that
    ``AnswerWatch`` asks afterwards (``heldout_questions``). KTO's training rows are shuffled
    too: TRL pairs each answer with its neighbour's prompt for the KL term, which must be
    another question's.
    """
    pref, loss = cfg.pref, LOSSES[cfg.pref.loss]
    asked = {p.question for p in heldout_questions()}
    rng = random.Random(cfg.seed)
    if pref.path is None:
        prompts = [p for p in make_prompts(cfg.data.size, seed=cfg.seed)
                   if p.question not in asked]
        n_held = max(2, len(prompts) // 5)
        train = pair_rows(preference_pairs(prompts[n_held:], pref.p_longer,
                                           pref.pairs_per_prompt, seed=cfg.seed), loss.paired)
        held = pair_rows(preference_pairs(prompts[:n_held], pref.p_longer,
                                          pref.pairs_per_prompt, seed=cfg.seed + 1),
                         loss.paired)
    else:
        from ..data.pairs import read_pairs, read_unpaired

        # A KTO file holds unpaired rows ({prompt, completion, label}) or pairs, each pair
        # then split in two (chosen good, rejected bad); the others hold pairs.
        as_pairs = loss.paired or _holds_pairs(pref.path)
        rows = (pair_rows(read_pairs(pref.path), loss.paired) if as_pairs
                else unpaired_rows(read_unpaired(pref.path)))
        groups: dict[str, list[dict]] = {}
        for row in rows:
            groups.setdefault(row["prompt"][-1]["content"], []).append(row)
        if len(groups) < 2:
            raise ConfigError("pref.path", pref.path, "a file of pairs on at least 2 prompts",
                              "A fifth of the prompts (at least one) is held out to measure "
                              "the margin on pairs the run never trained on.")
        questions = [q for q in groups if q not in asked] or list(groups)
        rng.shuffle(questions)
        n_held = max(1, len(questions) // 5)
        held = [r for q in questions[:n_held] for r in groups[q]]
        train = [r for q in questions[n_held:] for r in groups[q]]
    if not loss.paired:
        rng.shuffle(train)
    return train, held


def _holds_pairs(path: str) -> bool:
    """Whether a file's first row is a pair (``chosen``, ``rejected``) rather than a KTO row;
    a file that cannot be read is left to ``read_unpaired`` to name its problem."""
    from ..data.jsonl import read_jsonl

    try:
        first = read_jsonl(path, check=lambda row, where: row)[0]
    except DatasetError:
        return False
    return isinstance(first, dict) and ("chosen" in first or "rejected" in first)


class PreferencePart(TrainerPart):
    """TRL's preference trainer for ``pref.loss`` on the run's pairs: the method's trainable
    parameters pushed towards the chosen answers and away from the rejected ones."""

    def prepare(self) -> None:
        cfg = self.cfg
        _check(cfg)
        self.loss = LOSSES[cfg.pref.loss]
        self.label = f"{cfg.pref.loss.upper()} ({cfg.method.name})"
        self.train_rows, self.heldout_rows = split_pairs(cfg)
        if cfg.train.batch_size > len(self.train_rows):
            raise ConfigError("train.batch_size", cfg.train.batch_size,
                              f"at most the {len(self.train_rows)} training rows",
                              "In a preference run train.batch_size counts pairs per step "
                              "(KTO: single answers); "
                              "use more prompts (data.size) or a smaller batch.")
        self.splits = load_splits(cfg)  # the task's rows, for evaluators (``ctx.splits``)
        self.model, self.tokenizer = load_model(
            cfg.model, device=cfg.device, dtype=cfg.dtype,
            quantization=cfg.method.quantization(self.placement))
        self.peft_config = cfg.method.peft_config(self.model, resolve_source(cfg.model))
        self.step_metrics = STEP_METRICS

    def callbacks(self, bus, run_dir: Path) -> tuple[list, list]:
        cfg = self.cfg
        questions = self.heldout_rows[: cfg.eval.samples or 0]
        sample_rows = [{"messages": [*r["prompt"], *(r.get("chosen") or r["completion"])]}
                       for r in questions]
        self.evaluations = Evaluations(bus, self.tokenizer, self.splits, cfg, self.evaluators,
                                       sample_rows, cfg.eval.sample_max_new_tokens, run_dir)
        self.evaluations.trainer_metrics = EVAL_METRICS
        self.evals, self.samples = self.evaluations.evals, self.evaluations.samples
        return [self.evaluations], []

    def build(self, callbacks, run_dir: Path):
        from datasets import Dataset
        from transformers import PrinterCallback

        cfg, pref, t = self.cfg, self.cfg.pref, self.cfg.train
        config_cls, trainer_cls = self.loss.classes()
        more: dict[str, Any] = dict(self.loss.options)
        if pref.ld_alpha is not None:
            more["ld_alpha"] = pref.ld_alpha
        if reference_of(cfg) == "precomputed":
            more["precompute_ref_log_probs"] = True
        batch = per_device(t.batch_size)
        args = trainer_arguments(
            config_cls, output_dir=str(run_dir), max_steps=t.max_steps, batch_size=batch,
            learning_rate=t.learning_rate, seed=cfg.seed, placement=self.placement,
            report_to=t.report_to, per_device_eval_batch_size=batch,
            eval_strategy="steps", eval_steps=cfg.eval.every or t.max_steps,
            beta=pref.beta,  # resolved: the objective's usual value unless set
            max_length=pref.max_length, bf16=bf16(self.placement),
            activation_checkpointing=False,  # TRL's default: every forward twice, a third slower
            remove_unused_columns=False, **more, **schedule(t))
        trainer = trainer_cls(
            model=self.model, args=args, processing_class=self.tokenizer,
            train_dataset=Dataset.from_list(self.train_rows),
            eval_dataset=Dataset.from_list(self.heldout_rows),
            peft_config=self.peft_config, callbacks=list(callbacks))
        trainer.remove_callback(PrinterCallback)  # our events and progress bar report instead
        return trainer

    def run(self, trainer) -> None:
        trainer.evaluate()  # step 0: where the policy starts
        trainer.train()
        if self.evaluations.last_full_step != trainer.state.global_step:
            self.evaluations.force_full = True  # measure the model this run returns
            trainer.evaluate()

    def final(self, step: int, events: StepEvents) -> dict:
        evals = self.evaluations.evals
        full = [e for e in evals if e.get("full", True)]
        out: dict[str, Any] = {
            "steps": step,
            "train_loss": events.steps[-1]["loss"] if events.steps else None,
            "loss": self.cfg.pref.loss, "reference": reference_of(self.cfg),
            "first_val_loss": evals[0]["val_loss"] if evals else None,
            "final_val_loss": evals[-1]["val_loss"] if evals else None,
            "first_metrics": full[0]["metrics"] if full else {},
            "final_metrics": full[-1]["metrics"] if full else {},
            "train_pairs": len(self.train_rows), "heldout_pairs": len(self.heldout_rows),
            "step_time_s": statistics.median(events.step_times) if events.step_times else None,
        }
        return out

    def figures(self, trainer) -> dict:
        return {"loss": self.cfg.pref.loss, "needs_reference": self.loss.needs_reference,
                "paired": self.loss.paired}
