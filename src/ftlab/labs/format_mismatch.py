"""Lab 2: format mismatch. Train on wrongly formatted rows, infer with the chat template,
and the outputs break.

The claim: a model fine-tuned on examples laid out in a format other than the one it is
prompted with learns the answers and the wrong shape around them. Template debris behind
the answers comes back as stray markers in its answers, more of them the more rows carry
it; another model family's template teaches it an end marker that is text to it, so its
answers no longer stop. Training on the same rows in the model's own chat template, the
end-of-turn token in the labels and the loss on the answer only, gives valid answers.

Arms (LoRA on SmolLM2-135M-Instruct, arithmetic word problems, same rows and steps):

- ``matched``: the model's chat template, prompt masked, answer *and* ``<|im_end|>``
  learned (the fix: one template for training and inference);
- ``stray_50``, ``stray_100``: that share of the rows ends in ``\n### Answer:`` before
  ``<|im_end|>`` (the dose-response; ``matched`` is its 0%);
- ``foreign_template``: every row in Llama-2's ``<s>[INST] ... [/INST] ... </s>`` written
  as plain text; inference still uses SmolLM2's own template;
- not swept, for the panel and the notebook's questions: ``plain_template`` (``### Question
  / ### Answer``, no end token), ``no_eos`` (the end-of-turn token dropped from the labels:
  what a collator that masks padding does to SmolLM2, whose pad token *is* ``<|im_end|>``),
  ``whole_text`` (the loss on every token, prompt included), ``foreign_50``, ``plain_50``.

``watch`` scores format validity (parses, stops, clean of stray markers) on held-out rows at
every evaluation. Sizes differ by preset (``FormatMismatch.presets``). Figures and tables,
among them ``label_mask_html`` (which tokens of a training row are learned):
``show_format_mismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from statistics import mean
from typing import Any

from ..config import RunConfig
from ..data.formats import IGNORE_INDEX, encode
from ..evaluate.format import format_validity
from ..evaluate.result import EvalResult
from ..evaluate.task import answer_rows
from ..models import eval_mode
from .base import Lab, LabResult, Preset
from .calibration import CPU_2_CORES, Calibration, by_seed

# -- watching the format during training -----------------------------------------------


def end_probability(model, tok, rows) -> float:
    """Mean probability the model gives the end-of-turn token right after each row's
    reference answer, the question in the model's own chat template (teacher forcing, no
    generation). Greedy decoding turns it into all or nothing (it stops when this beats
    every other token); the probability itself shows what share of the training rows taught
    the model to stop there."""
    import torch

    if not rows:
        return float("nan")
    seqs = [encode(r, tok, "chat_no_eos", 10_000)["input_ids"] for r in rows]
    width = max(map(len, seqs))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = next(model.parameters()).device
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
    with eval_mode(model), torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    last = torch.tensor([len(s) - 1 for s in seqs], device=device)
    probs = logits[torch.arange(len(seqs), device=device), last].float().softmax(-1)
    return float(probs[:, tok.eos_token_id].mean())



@dataclass(frozen=True)
class FormatWatch:
    """Format validity of greedy answers to the run's first ``rows`` held-out test rows.

    ``max_new_tokens`` is the budget an answer must stop within (a trained answer, "The
    answer is 42.<|im_end|>", takes 8 tokens; 24 leaves three times that). Reports
    ``score`` (all three checks pass), ``parses``, ``stops``, ``clean`` and
    ``answer_tokens`` (mean tokens generated: a runaway answer uses the whole budget) and
    ``end_prob`` (``end_probability``: how likely the end-of-turn token is right after a
    correct answer). The base model's scores (step 0) are kept on disk and shared by every
    arm of a seed.
    """

    rows: int = 8
    max_new_tokens: int = 24
    when: str = "always"

    @property
    def key(self) -> str:
        return f"format_mismatch.watch:{self.rows}:{self.max_new_tokens}:{self.when}"

    def __call__(self, model, tok, ctx) -> EvalResult:
        from ..evaluate.cache import base_scored

        cfg = ctx.config
        task = cfg.data.scored_as
        rows = list(ctx.splits.test[: self.rows])

        def compute() -> EvalResult:
            answers = answer_rows(model, tok, rows, task, self.max_new_tokens, progress=False)
            result = format_validity(model, tok, rows, task, answers=answers, progress=False)
            result.extra["answer_tokens"] = mean(a.n_tokens for a in answers) if answers else 0.0
            result.extra["end_prob"] = end_probability(model, tok, rows)
            return result

        return base_scored(ctx, compute, suite=self.key, rows=rows)


# -- the label mask of one training row ---------------------------------------------------


def label_mask(row: dict, tok, fmt: str = "chat", max_length: int = 256) -> list[dict]:
    """The tokens of one training row as ``encode`` makes them, each with ``learned`` (its
    label is the token itself) or not (label -100: the loss ignores it)."""
    enc = encode(row, tok, fmt, max_length)
    return [{"id": i, "text": tok.decode([i]), "learned": lab != IGNORE_INDEX,
             "special": i in tok.all_special_ids}
            for i, lab in zip(enc["input_ids"], enc["labels"])]


# -- the lab ------------------------------------------------------------------------------
ARMS: dict[str, dict[str, Any]] = {
    # the fix: one template for training and inference, <|im_end|> learned, loss on the answer
    "matched": {"format": "chat"},
    # the dose-response: that share of the rows drags template debris ("\n### Answer:")
    # behind the answer, before <|im_end|>; the rest are clean chat rows
    "stray_50": {"format": "chat", "data.corruption": "spurious_tokens",
                 "data.corruption_rate": 0.5},
    "stray_100": {"format": "chat", "data.corruption": "spurious_tokens",
                  "data.corruption_rate": 1.0},
    # the template mismatch: every row in another model family's template (Llama-2's
    # [INST] ... </s>, written as plain text); inference still uses SmolLM2's own template
    "foreign_template": {"format": "foreign_chat"},
    # not swept (the panel and "try next"; measured once, see the notebook)
    "plain_template": {"format": "plain_qa"},
    "no_eos": {"format": "chat_no_eos"},
    "whole_text": {"format": "chat_whole_text"},
    "foreign_50": {"format": "chat", "data.corruption": "foreign_chat",
                   "data.corruption_rate": 0.5},
    "plain_50": {"format": "chat", "data.corruption": "plain_qa", "data.corruption_rate": 0.5},
}
SWEPT = ("matched", "stray_50", "stray_100")  # checked: every seed of ``lab.sweep()``
MISMATCHED = "foreign_template"  # extra: the first seed of ``lab.sweep()`` (the panel's run)
DOSES: dict[str, float] = {"matched": 0.0, "stray_50": 0.5, "stray_100": 1.0}

# The check's margins (see ``FormatMismatch.conditions``).
RECOVERED = 0.75  # the matched run (the fix) is valid in at least this share of answers
DROP = 0.5  # a broken format's validity ends at least this far below the fix's
STRAY = 0.75  # all-debris training leaves stray markers in at least this share of answers
RUNAWAY = 0.25  # the foreign-template model stops in at most this share of its answers
END_STEP = 0.1  # each step of the dose (0 -> 50% -> 100%) lowers the end-of-turn probability
# after a correct answer by at least this (validity, all or nothing per model, must not rise).
# Set from ``MEASURED``: the narrowest step of P(end) is 0.21, twice the margin.

# Measured on the CPU preset, seeds 0 / 1 / 2, at the end of training (16 held-out answers;
# the notebook's table shows these): validity, stop rate, clean rate, P(<|im_end|>) after a
# correct answer. The foreign template is swept on the first seed only (None: not swept).
MEASURED: dict[str, tuple[float | None, ...]] = {
    "base.valid": (0.0, 0.0, 0.0),
    "matched.valid": (1.0, 1.0, 1.0),
    "matched.stops": (1.0, 1.0, 1.0),
    "matched.clean": (1.0, 1.0, 1.0),
    "matched.end_prob": (0.999, 0.992, 1.000),
    "stray_50.valid": (0.50, 0.00, 0.25),
    "stray_50.stops": (1.0, 1.0, 1.0),
    "stray_50.clean": (0.50, 0.00, 0.25),
    "stray_50.end_prob": (0.518, 0.209, 0.438),
    "stray_100.valid": (0.0, 0.0, 0.0),
    "stray_100.stops": (1.0, 1.0, 1.0),
    "stray_100.clean": (0.0, 0.0, 0.0),
    "stray_100.end_prob": (0.000, 0.000, 0.000),
    "foreign_template.valid": (0.0, None, None),
    "foreign_template.stops": (0.0, None, None),
    "foreign_template.clean": (0.0, None, None),
    "foreign_template.end_prob": (0.000, None, None),
}
CALIBRATION = Calibration(
    where=CPU_2_CORES, when=date(2026, 11, 26), per_seed=by_seed(MEASURED),
    wall="the sweep (10 runs): about 2.5-6 minutes", source="ftlab.labs.format_mismatch.MEASURED")


class FormatMismatch(Lab):
    """Wrongly formatted training rows, chat inference: stray markers and runaway answers;
    the fix is one template for training and inference."""

    title = "Lab 2 · Format mismatch"
    claim = ("Trained with its own chat template (end-of-turn token learned, loss on the "
             f"answer) the model answers in a valid format ({RECOVERED:.0%} or more of "
             "held-out answers). Trained on the same rows with template debris ('### Answer:') "
             f"behind every answer, its validity ends at least {DROP:.0%} lower, with stray "
             f"markers in at least {STRAY:.0%} of its answers. The more rows carry debris, the "
             "less likely the end-of-turn token after a correct answer (each step of the dose, "
             f"0 -> 50% -> 100%, lowers it by at least {END_STEP:.2f}) and validity never "
             "rises. Trained in another family's template ([INST] ... </s>) and prompted "
             f"with its own (first seed), its validity ends at least {DROP:.0%} lower and it "
             f"stops in at most {RUNAWAY:.0%} of its answers.")
    base = RunConfig(method="lora", preset="auto").replace(task="arithmetic")
    # Sizes per preset. CPU: 8 LoRA steps of 4 rows at lr 3e-3 (3x the method's default, so that
    # 8 steps are enough to break the broken arms: measured over three seeds), format validity
    # on 16 held-out rows before and after training (a mid-run evaluation costs 4 s a run on two
    # cores). GPU: the same lesson at classroom scale, validity every 10 steps.
    presets = {
        "cpu": Preset(
            base={"steps": 8, "batch_size": 4, "eval_every": 8, "size": 48, "data.val_size": 8,
                  "data.max_length": 96, "lr": 3e-3, "eval.samples": 1,
                  "eval.sample_max_new_tokens": 24},
            arms=ARMS, checked=SWEPT, extra=(MISMATCHED,),
            watch={"format": FormatWatch(rows=16, max_new_tokens=24)},
            calibration=CALIBRATION),
        "gpu": Preset(
            base={"steps": 60, "batch_size": 16, "eval_every": 10, "size": 480,
                  "data.val_size": 64, "data.max_length": 128, "lr": 3e-3, "eval.samples": 4,
                  "eval.sample_max_new_tokens": 32},
            arms=ARMS, checked=SWEPT, extra=(MISMATCHED,),
            watch={"format": FormatWatch(rows=64, max_new_tokens=32)}),
    }
    knobs = {"format": None, "data.corruption": None, "data.corruption_rate": (0.0, 1.0),
             "steps": (2, 200), "lr": (1e-5, 1e-1)}
    metrics = {"format validity (held-out answers)": ["format.score", "format.stops",
                                                      "format.clean"]}
    number_names = {  # each arm's numbers, on the held-out answers at the end of training
        "valid": "valid format (share of answers)",
        "stops": "stops within the budget (share of answers)",
        "clean": "no stray markers (share of answers)",
        "end_prob": "P(<|im_end|>) after a correct answer",
        "base.valid": "base model: valid format (share of answers)",
    }

    # -- the lesson ---------------------------------------------------------------------
    def measure(self, runs) -> dict[str, float]:
        out: dict[str, float] = {"base.valid": runs["matched"].metric("format.score", "first")}
        for arm in (*SWEPT, MISMATCHED):
            if arm in runs:
                out[f"{arm}.valid"] = runs[arm].metric("format.score")
                out[f"{arm}.stops"] = runs[arm].metric("format.stops")
                out[f"{arm}.clean"] = runs[arm].metric("format.clean")
                out[f"{arm}.end_prob"] = runs[arm].metric("format.end_prob")
        return out

    def conditions(self, m) -> dict[str, bool]:
        fix, half, full = m["matched.valid"], m["stray_50.valid"], m["stray_100.valid"]
        out = {
            "fix valid": fix >= RECOVERED,
            "debris: validity falls": fix - full >= DROP,
            "debris: stray markers": 1 - m["stray_100.clean"] >= STRAY,
            "dose: validity never rises": fix >= half >= full,
            "dose: stop probability falls": (
                m["matched.end_prob"] - m["stray_50.end_prob"] >= END_STEP
                and m["stray_50.end_prob"] - m["stray_100.end_prob"] >= END_STEP),
        }
        if f"{MISMATCHED}.valid" in m:  # the seed that ran the foreign template
            out["template: validity falls"] = fix - m[f"{MISMATCHED}.valid"] >= DROP
            out["template: runs away"] = m[f"{MISMATCHED}.stops"] <= RUNAWAY
        return out


def dose_response(result: LabResult) -> list[dict]:
    """Validity, stop rate and clean rate against the share of rows with template debris,
    one row per dose arm and seed of a sweep (what the notebook's figure plots)."""
    rows = [{"arm": arm, "seed": seed, "share": DOSES[arm],
             "valid": run.metric("format.score"), "stops": run.metric("format.stops"),
             "clean": run.metric("format.clean"), "end_prob": run.metric("format.end_prob")}
            for (arm, seed), run in result.runs.items() if arm in DOSES]
    return sorted(rows, key=lambda r: (r["seed"], r["share"]))
