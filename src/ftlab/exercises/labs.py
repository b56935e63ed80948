"""The checks of the five lab notebooks' exercises (20-24), each against ftlab's own code."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

from .core import Case, function_check, property_check, short

# ------------------------------------------------------------------ 20 · overfitting


def replay_early_stop(val_losses, patience: int) -> tuple[int | None, int]:
    """ftlab's early-stopping callback (``ftlab.engine.callbacks.EarlyStopping``) fed a list
    of validation losses, one per evaluation: (the evaluation after which it stops, or None
    if it never does; the evaluation whose weights it returns)."""
    import torch

    from ..engine.callbacks import EarlyStopping

    rule, model = EarlyStopping(patience), torch.nn.Linear(1, 1)
    control = SimpleNamespace(should_training_stop=False)
    for i, loss in enumerate(val_losses):
        rule.on_evaluate(None, SimpleNamespace(global_step=i), control,
                         metrics={"eval_loss": float(loss)}, model=model)
        if control.should_training_stop:
            return i, rule.best_step
    return None, rule.best_step


def _curves(n: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length, low = rng.randint(3, 12), rng.randint(1, 8)
        out.append([round(2.0 - 0.2 * min(i, low) + 0.15 * max(0, i - low)
                          + rng.uniform(-0.25, 0.25), 2) for i in range(length)])
    return out


EARLY_STOP_CASES = [
    Case("falls, then rises (patience 2)", ([2.0, 1.5, 1.2, 1.4, 1.6, 1.9], 2)),
    Case("keeps falling: never stops", ([2.0, 1.8, 1.5, 1.3], 2)),
    Case("a tie is not an improvement", ([2.0, 1.0, 1.0, 1.0, 0.9], 2)),
    Case("a second dip resets the count", ([2.0, 1.2, 1.3, 1.1, 1.4, 1.5, 1.6], 2)),
    Case("patience 1", ([2.0, 1.5, 1.6, 1.0], 1)),
    Case("patience 3", ([1.0, 1.1, 1.2, 0.9, 1.0, 1.0, 1.3, 0.8], 3)),
    *[Case(f"random curve {i}", (c, p)) for i, (c, p) in
      enumerate(zip(_curves(40, 20), [1, 2, 3, 4] * 10))],
]


def _early_stop_hint(case, got, want) -> str:
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return "return a pair: (stop, best), e.g. (4, 2) or (None, 3)."
    if got[1] != want[1] and got[1] == len(case.args[0]) - 1:
        return "the run returns the weights of its *best* evaluation, not of its last one."
    if got[0] is not None and want[0] is not None and got[0] == want[0] + 1:
        return ("yours stops one evaluation late: stop as soon as `patience` evaluations in a "
                "row were no better than the best.")
    if got[0] is not None and want[0] is not None and got[0] == want[0] - 1:
        return "yours stops one evaluation early: count the evaluations that were no better."
    return ("an evaluation counts as better only if its loss is strictly lower than the best "
            "so far; each better one resets the count.")


def check_early_stop(fn) -> None:
    function_check("20.2", "early stopping", fn, EARLY_STOP_CASES,
                   lambda c: replay_early_stop(*c.args),
                   compare=lambda g, w: tuple(g) == tuple(w), hint=_early_stop_hint)


def check_min_delta_stop(fn) -> None:
    """Design: early stopping that ignores improvements smaller than ``min_delta``."""

    def same_as_ftlab_at_zero(f):
        for case in EARLY_STOP_CASES:
            got = f(*case.args, min_delta=0.0)
            want = replay_early_stop(*case.args)
            if got is None:
                return False, "stub"
            if tuple(got) != tuple(want):
                return False, (f"on {short(case.args[0])} with patience {case.args[1]}: "
                               f"yours {tuple(got)}, ftlab's rule {want}")
        return True, ""

    def tiny_gains_do_not_count(f):
        curve = [1.0, 0.99, 0.985, 0.98, 0.975]  # improves by 0.005-0.01 each time
        got = f(curve, 2, min_delta=0.05)
        ok = got is not None and tuple(got) == (2, 0)
        return ok, (f"on {curve}, patience 2, min_delta 0.05 the gains are all below 0.05, so "
                    f"the run should stop after evaluation 2 and return evaluation 0; yours "
                    f"gave {got}")

    def real_gains_count(f):
        curve = [1.0, 0.8, 0.6, 0.4, 0.45, 0.5]
        got = f(curve, 2, min_delta=0.05)
        ok = got is not None and tuple(got) == (5, 3)
        return ok, f"on {curve}, patience 2, min_delta 0.05: expected (5, 3), yours {got}"

    property_check("20.3", "early stopping with a minimum improvement", fn, [
        ("with min_delta = 0 it is exactly ftlab's rule (the cases of 20.2)",
         same_as_ftlab_at_zero),
        ("an improvement smaller than min_delta does not reset the count", tiny_gains_do_not_count),
        ("an improvement of at least min_delta still counts", real_gains_count),
    ])


# ------------------------------------------------------------------ 21 · format mismatch


def _rows():
    from ..data import make_task

    rows = [
        {"messages": [{"role": "user", "content": "What is 2 + 3?"},
                      {"role": "assistant", "content": "The answer is 5."}]},
        {"messages": [{"role": "system", "content": "You are terse."},
                      {"role": "user", "content": "Say hi."},
                      {"role": "assistant", "content": "Hi."}]},
    ]
    for task, seed in (("arithmetic", 3), ("extraction", 4), ("sentiment", 5)):
        rows += make_task(task, 10, seed=seed).train[:3]
    return rows


def _tok():
    from ..models import load_tokenizer

    return load_tokenizer()


def check_encode_chat(fn) -> None:
    from ..data.formats import IGNORE_INDEX, encode

    tok = _tok()
    rows = _rows()
    cases = [Case(f"row {i}: {r['messages'][-1]['content'][:40]!r}", (r, tok),
                  show=f"the chat {short(r['messages'], 120)}") for i, r in enumerate(rows)]

    def want(case):
        e = encode(case.args[0], tok, "chat", max_length=10**6)
        return {"input_ids": e["input_ids"], "labels": e["labels"]}

    def compare(got, w):
        return list(got["input_ids"]) == w["input_ids"] and list(got["labels"]) == w["labels"]

    def hint(case, got, w):
        try:
            ids, labels = list(got["input_ids"]), list(got["labels"])
        except Exception:
            return 'return a dict with the keys "input_ids" and "labels" (two lists of ints).'
        if ids != w["input_ids"]:
            return ("input_ids differ from the chat template's tokens: render the prompt with "
                    "add_generation_prompt=True, the full chat without it, and tokenize both "
                    "parts with add_special_tokens=False.")
        n_prompt = w["labels"].count(IGNORE_INDEX)
        learned_prompt = sum(lab != IGNORE_INDEX for lab in labels[:n_prompt])
        if learned_prompt:
            return (f"your labels learn {learned_prompt} of the {n_prompt} prompt tokens (system "
                    "and user turns, the assistant header): they must be -100, or the model is "
                    "taught to write questions.")
        if labels[-1] == IGNORE_INDEX or len(labels) != len(w["labels"]):
            return (f"the end-of-turn token {tok.eos_token!r} after the answer must be learned "
                    "(it is how the model learns to stop); keep it, drop the newline after it.")
        return "every answer token must carry its own id as its label."

    function_check("21.1", "the label mask", fn, cases, want, compare=compare, hint=hint,
                   describe=lambda v: (f"{len(v['input_ids'])} tokens, labels "
                                       f"{_mask_summary(v['labels'])}") if isinstance(v, dict)
                   else short(v))


def _mask_summary(labels) -> str:
    labels = list(labels)
    masked = sum(lab == -100 for lab in labels)
    return f"{masked} × -100 then {len(labels) - masked} learned, ending {labels[-3:]}"


LINT_EXPECTED = {"chat": set(), "chat_no_eos": {"no_end_token"},
                 "chat_whole_text": {"prompt_learned", "stray_markers"},
                 "spurious_tokens": {"stray_markers"},
                 "foreign_chat": {"no_end_token", "stray_markers"}, "plain_qa": {"no_end_token"}}


def check_lint_rows(fn) -> None:
    """Design: a data check that finds each broken format before training."""
    from ..data.formats import encode

    tok = _tok()
    rows = _rows()

    def finds(fmt):
        def prop(f):
            for i, row in enumerate(rows):
                got = f(encode(row, tok, fmt, max_length=10**6), tok)
                if got is None:
                    return False, "stub"
                if set(got) != LINT_EXPECTED[fmt]:
                    return False, (f"row {i} encoded as {fmt!r}: expected "
                                   f"{sorted(LINT_EXPECTED[fmt]) or 'no problem'}, yours "
                                   f"{sorted(got) or 'no problem'}")
            return True, ""
        return prop

    property_check("21.3", "a data check before training", fn, [
        (f"rows in the {fmt!r} format: {sorted(want) or 'no problem found'}", finds(fmt))
        for fmt, want in LINT_EXPECTED.items()])


# ------------------------------------------------------------------ 22 · collapse


def _paired_cases():
    rng = random.Random(22)
    cases = [Case("three probes, one lost", ([1, 1, 0], [1, 0, 0])),
             Case("no change at all", ([1, 0, 1, 0], [1, 0, 1, 0])),
             Case("every probe lost", ([1, 1, 1, 1, 1], [0, 0, 0, 0, 0])),
             Case("scores, not only 0/1", ([0.5, 0.2, 0.9, 0.4], [0.1, 0.3, 0.2, 0.0]))]
    for i in range(20):
        n = rng.choice([6, 12, 24])
        before = [rng.randint(0, 1) for _ in range(n)]
        after = [b if rng.random() < 0.6 else rng.randint(0, 1) for b in before]
        cases.append(Case(f"random {n} probes #{i}", (before, after)))
    return cases


def _paired_hint(case, got, want) -> str:
    if isinstance(got, (tuple, list)) and len(got) == 3 and math.isclose(got[0], want[0]):
        if abs(got[2] - got[1]) > abs(want[2] - want[1]):
            return ("your interval is wider than the paired one: take the differences item "
                    "by item first, then their mean and standard deviation.")
        return ("the half-width is t975(n - 1) · stdev(differences) / sqrt(n), with the "
                "sample standard deviation (statistics.stdev).")
    return "return (mean of after - before, low, high), in that order."


def check_paired_interval(fn) -> None:
    from ..evaluate.behaviour import paired_diff

    function_check("22.1", "the paired interval", fn, _paired_cases(),
                   lambda c: paired_diff(*c.args), hint=_paired_hint)


HEALTHY = ["The ocean is vast and deep, full of fish, whales and coral reefs.",
           "Paris is the capital of France, known for its museums and cafes.",
           "Here are three tips: sleep well, drink water, and take short walks.",
           "A haiku: soft rain on the roof / the kettle starts to sing / tea for two today"]


def check_collapse_alarm(fn) -> None:
    """Design: an alarm that sees collapse from the answers alone, no labelled probes."""
    collapsed = ["positive", "negative", "positive", "positive"]
    numbers = ["The answer is 4.", "The answer is 12.", "The answer is 7.", "The answer is 0."]
    shorter = ["The ocean is vast.", "Paris is the capital.", "Sleep, water, walks.",
               "Soft rain, kettle, tea."]

    def flags(after, want, what):
        def prop(f):
            got = f(HEALTHY, after)
            if got is None:
                return False, "stub"
            return bool(got) == want, f"{what}: expected {want}, yours {got!r}"
        return prop

    property_check("22.2", "a collapse alarm", fn, [
        ("flags answers that became sentiment labels", flags(collapsed, True, "labels")),
        ("flags answers that all read 'The answer is N.'", flags(numbers, True, "numbers")),
        ("does not flag the same answers as before", flags(HEALTHY, False, "unchanged")),
        ("does not flag answers that are only shorter", flags(shorter, False, "shorter")),
    ])


# ------------------------------------------------------------------ 23 · reward hacking

FILLER = ("it is a well known fact that many people find this topic very interesting and "
          "worth discussing at great length in every possible detail").split()


def _completions():
    rng = random.Random(23)
    base = [("Paris.", ["Paris"]), ("The capital of France is Paris.", ["Paris"]),
            ("London.", ["Paris"]), ("", ["Paris"]), ("Eight legs.", ["8", "eight"]),
            ("A spider has 8 legs, like every arachnid.", ["8", "eight"]),
            ("The answer is 176.", ["76"])]
    cases = [Case(f"{c!r}", (c, a)) for c, a in base]
    for i in range(25):
        text, answers = rng.choice(base[:3] + base[4:6])
        text = " ".join([text] + rng.sample(FILLER, rng.randint(0, len(FILLER))))
        cases.append(Case(f"random #{i} ({len(text.split())} words)", (text, answers)))
    return cases


def _gold_hint(case, got, want) -> str:
    if want == 0:
        return "a wrong (or empty) answer scores 0, however long (use ftlab.answers.is_correct)."
    if got == 1 and want < 1:
        return ("a correct answer longer than 15 words is scaled down: 15 / words "
                "(use ftlab.answers.count_words).")
    return "gold = correct · min(1, 15 / words)."


def check_gold(fn) -> None:
    from ..rlhf.rewards import gold_score

    function_check("23.1", "the gold reward", fn, _completions(),
                   lambda c: gold_score(*c.args), hint=_gold_hint)


def check_fair_reward(fn) -> None:
    """Design: a reward a policy cannot raise by writing more words."""
    from ..answers import is_correct

    questions = [("Paris", ["Paris"]), ("8 legs", ["8", "eight"]), ("Tokyo", ["Tokyo"])]

    def padding_never_pays(f):
        for short_answer, answers in questions:
            base = f(short_answer, answers)
            if base is None:
                return False, "stub"
            for k in (5, 10, 20, 40):
                longer = " ".join([short_answer] + (FILLER * 3)[:k])
                if f(longer, answers) > base + 1e-9:
                    return False, (f"{longer!r} scores {f(longer, answers):.3f}, more than "
                                   f"{short_answer!r} ({base:.3f}): length still pays")
        return True, ""

    def correct_beats_wrong(f):
        for short_answer, answers in questions:
            right = f(short_answer, answers)
            for k in (0, 10, 40):
                wrong = " ".join(["Madrid"] + (FILLER * 3)[:k])
                assert not is_correct(wrong, answers)
                if f(wrong, answers) >= right:
                    return False, (f"the wrong answer {wrong[:50]!r}... scores "
                                   f"{f(wrong, answers):.3f}, not below {short_answer!r} "
                                   f"({right:.3f})")
        return True, ""

    def empty_is_not_best(f):
        got, right = f("", ["Paris"]), f("Paris", ["Paris"])
        return got < right, f"'' scores {got}, 'Paris' {right}: an empty answer must not win"

    property_check("23.2", "a reward that stops paying for length", fn, [
        ("a correct answer scores more than any wrong one, short or long", correct_beats_wrong),
        ("adding words to a correct answer never raises its reward", padding_never_pays),
        ("an empty answer scores less than a short correct one", empty_is_not_best),
    ])


# ------------------------------------------------------------------ 24 · regression


def _wilson_hint(case, got, want) -> str:
    if isinstance(got, (tuple, list)) and len(got) == 2 and (
            got[0] < 0 or got[1] > 1 or got[1] - got[0] < 1e-12):
        return ("your interval leaves 0..1 or has no width: that is p ± 1.96·se. Wilson's "
                "interval is centred on (p + z²/2n) / (1 + z²/n).")
    return "check the centre (p + z²/(2n)) / (1 + z²/n) and the half-width formula."


def check_wilson(fn) -> None:
    from ..evaluate.result import wilson_interval

    rng = random.Random(24)
    cases = [Case("0 of 6", (0, 6)), Case("6 of 6", (6, 6)), Case("3 of 6", (3, 6)),
             Case("1 of 30", (1, 30)), Case("57 of 100", (57, 100))]
    for i in range(20):
        n = rng.choice([6, 16, 30, 50, 320])
        cases.append(Case(f"random #{i}", (rng.randint(0, n), n)))
    function_check("24.1", "the Wilson interval", fn, cases,
                   lambda c: wilson_interval(*c.args), hint=_wilson_hint)


def change_verdict(before, after) -> str:
    """The lab's reading of a paired change: beyond its 95% interval or not."""
    from ..evaluate.behaviour import paired_diff
    from ..labs.regression import direction

    d, lo, hi = paired_diff(before, after)
    return direction(lo, hi)


def check_change_verdict(fn) -> None:
    rng = random.Random(240)
    cases = [Case("lost on most items", ([1] * 10 + [0] * 4, [0] * 8 + [1] * 2 + [0] * 4)),
             Case("a little noise", ([1, 0, 1, 0, 1, 1], [1, 1, 0, 0, 1, 1])),
             Case("gained everywhere", ([0] * 8, [1] * 8))]
    for i in range(20):
        n = rng.choice([8, 16, 30])
        p = rng.uniform(0.1, 0.9)
        before = [int(rng.random() < p) for _ in range(n)]
        drift = rng.uniform(-0.6, 0.6)
        after = [int(rng.random() < min(1, max(0, p + drift))) for _ in range(n)]
        cases.append(Case(f"random {n} items #{i}", (before, after)))
    function_check("24.2", "fell, rose or cannot tell", fn, cases,
                   lambda c: change_verdict(*c.args), compare=lambda g, w: g == w,
                   hint=("use the paired interval of 22.1 (ftlab.evaluate.behaviour.paired_diff"
                         " is the same): 'fell' only if its high end is below zero."))
