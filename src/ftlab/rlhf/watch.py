"""The low-noise view of a policy run: greedy answers to questions it never trains on.

GRPO's per-step rewards are means over a few *sampled* completions to the step's *training*
prompts: two steps differ by which prompts came up and by sampling luck as much as by what
the policy learned. ``GoldWatch`` asks the same 48 held-out questions (``substance_prompts``)
at every evaluation, answers greedily, and scores each answer apart by correctness, length,
the run's proxy and the gold reward, so two evaluations differ only because the policy did,
and question by question (the answers are kept in the run folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

from ..answers import count_words, is_correct
from ..evaluate.result import EvalResult
from .prompts import heldout_prompts, policy_rows, substance_prompts
from .proxy import make_proxy
from .rewards import gold_score

ITEMS = ("correct", "words", "proxy")  # what GoldWatch also reports question by question


@dataclass(frozen=True)
class GoldWatch:
    """An evaluator (``train(cfg, evaluators={"heldout": GoldWatch()})``).

    Numbers: ``correct`` (share correct, however long), ``words`` (mean answer length),
    ``proxy`` (the run's proxy, ``rl.reward``) and ``gold`` (mean gold reward, which falls
    with length by its definition: a yardstick, never read alone). The base model's numbers
    are cached, so every run of a lab measures its start once.
    """

    extra_tokens: int = 8  # answers may run this far past training's rl.max_completion_length
    when: str = "always"  # at every evaluation, not only the first and last

    @property
    def key(self) -> str:  # names it in the run cache's key (``runs.cache_key``)
        return f"rlhf:gold_watch:{len(substance_prompts())}:+{self.extra_tokens}"

    def tokens(self, cfg) -> int:
        """Longest held-out answer: a little past training's cap, so that an answer that
        learned not to stop is seen going on."""
        return cfg.rl.max_completion_length + self.extra_tokens

    def answers(self, model, tok, ctx) -> EvalResult:
        """The held-out questions answered and scored (a row per question in ``examples``)."""
        from ..generation import generate_answers

        prompts = substance_prompts()
        chats = [row["prompt"] for row in policy_rows(prompts)]
        answers = generate_answers(model, tok, chats, max_new_tokens=self.tokens(ctx.config))
        texts = [a.text for a in answers]
        keys = [p.answers for p in prompts]
        proxy = make_proxy(ctx.config, prompts).score(chats, texts, answers=keys)
        rows = [{"question": p.question, "expected": p.answers[0], "answer": t,
                 "gold": gold_score(t, p.answers, ctx.config.rl.gold_target_words),
                 "proxy": pr, "words": count_words(t), "correct": is_correct(t, p.answers)}
                for p, t, pr in zip(prompts, texts, proxy, strict=True)]
        return EvalResult(
            suite="rlhf:gold_watch", score=fmean(r["gold"] for r in rows), n=len(rows),
            breakdown={"correct": fmean(r["correct"] for r in rows)},
            examples=rows, extra={"proxy": fmean(proxy), "words": fmean(r["words"] for r in rows)})

    def __call__(self, model, tok, ctx) -> dict[str, float]:
        from ..evaluate.behaviour import save_answers
        from ..evaluate.cache import base_scored

        rl = ctx.config.rl
        # A learned proxy is trained per seed (``make_proxy``): its scores are too.
        proxy = ({"reward": "learned", "labeller": rl.labeller_p_longer,
                  "seed": ctx.config.seed} if rl.reward == "learned" else {"reward": rl.reward})
        result = base_scored(ctx, lambda: self.answers(model, tok, ctx), suite="rlhf:gold_watch",
                             tokens=self.tokens(ctx.config), target=rl.gold_target_words,
                             rows=[p.question for p in substance_prompts()], **proxy)
        out = {"gold": result.score, "correct": result.breakdown["correct"],
               "proxy": result.extra["proxy"], "words": result.extra["words"]}
        if ctx.full:  # kept for reading side by side (``saved_answers(run, "heldout")``)
            save_answers(ctx, "heldout", result.examples,
                         {f"heldout.{k}": v for k, v in out.items()})
            # per question (``heldout.correct/<i>``...): a paired interval of before
            # against after needs nothing but the run's metrics (``item_values``)
            out.update({f"{k}/{i}": float(row[k]) for i, row in enumerate(result.examples)
                        for k in ITEMS})
        return out


def heldout_questions(n_arithmetic: int = 36) -> list:
    """The held-out facts plus ``n_arithmetic`` arithmetic questions drawn from their own seed:
    what a preference run is asked before and after training, the same for every seed and
    run. A preference run leaves these questions out of its training prompts
    (``ftlab.engine.preference.split_pairs``), whatever its seed."""
    from .prompts import make_prompts

    arithmetic = [p for p in make_prompts(max(10, n_arithmetic), seed=HELDOUT_SEED,
                                          fact_fraction=0.0)][:n_arithmetic]
    return heldout_prompts() + arithmetic


HELDOUT_SEED = 1_000_003  # its own stream; training prompts that meet it are left out


@dataclass(frozen=True)
class AnswerWatch:
    """Greedy answers to ``heldout_questions``: correctness and length measured apart.

    An evaluator (``train(cfg, evaluators={"heldout": AnswerWatch()})``). Numbers:
    ``correct`` (share of answers that name the right answer, however long), ``words`` (mean
    length) and ``gold`` (``gold_score``: correct, and no longer than needed; shown as the
    yardstick of Lab 4, never read alone, since it falls with length by definition). The
    per-question rows are saved, so two runs can be compared question by question.
    """

    max_new_tokens: int = 64
    n_arithmetic: int = 36
    target_words: int = 15
    when: str = "always"

    @property
    def key(self) -> str:  # names it in the run cache's key (``runs.cache_key``)
        return (f"rlhf:answer_watch:{self.max_new_tokens}:{self.n_arithmetic}:"
                f"{self.target_words}")

    def answers(self, model, tok) -> EvalResult:
        from ..generation import generate_answers

        prompts = heldout_questions(self.n_arithmetic)
        chats = [row["prompt"] for row in policy_rows(prompts)]
        texts = [a.text for a in generate_answers(model, tok, chats,
                                                  max_new_tokens=self.max_new_tokens)]
        rows = [{"question": p.question, "expected": p.answers[0], "answer": t,
                 "words": count_words(t), "correct": is_correct(t, p.answers),
                 "gold": gold_score(t, p.answers, self.target_words)}
                for p, t in zip(prompts, texts, strict=True)]
        return EvalResult(
            suite="rlhf:answer_watch", score=fmean(r["correct"] for r in rows), n=len(rows),
            breakdown={"correct": fmean(r["correct"] for r in rows)}, examples=rows,
            extra={"words": fmean(r["words"] for r in rows),
                   "gold": fmean(r["gold"] for r in rows)})

    def __call__(self, model, tok, ctx) -> dict[str, float]:
        from ..evaluate.behaviour import save_answers
        from ..evaluate.cache import base_scored

        result = base_scored(ctx, lambda: self.answers(model, tok), suite="rlhf:answer_watch",
                             tokens=self.max_new_tokens, target=self.target_words,
                             rows=[p.question for p in heldout_questions(self.n_arithmetic)])
        out = {"correct": result.score, "words": result.extra["words"],
               "gold": result.extra["gold"]}
        if ctx.full:
            save_answers(ctx, "heldout", result.examples,
                         {f"heldout.{k}": v for k, v in out.items()})
        return out
