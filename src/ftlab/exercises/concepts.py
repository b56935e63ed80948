"""Concept checks (three per notebook) and predict-and-check feedback: checked in place,
never graded. A wrong answer gets a hint; a right one gets the explanation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    answer: str | float  # a letter, or a number
    explanation: str
    hint: str
    tol: float = 0.0  # for numbers: relative tolerance


Q = Question
QUESTIONS: dict[str, tuple[Question, Question, Question]] = {
    "00": (
        Q("b", "The validation loss is measured on problems the model never trains on: it "
          "falls only if what was learned carries over.", "Which of the two losses could a "
          "model lower by memorising its batches?"),
        Q(9216, "r·(d_in + d_out) = 8·(576 + 576) = 9,216 numbers, against 331,776 in W.",
          "A is r × d_in, B is d_out × r.", 0.0),
        Q("a", "B starts at zero, so BA = 0: before the first step the model computes exactly "
          "what the base model computes.", "What is B·A when B is all zeros?"),
    ),
    "10": (
        Q(16, "4 (weight) + 4 (gradient) + 8 (AdamW's two moments) bytes per trained weight.",
          "Count the weight, its gradient and AdamW's two running averages, 4 bytes each."),
        Q("c", "On its first step AdamW divides m̂ by √v̂, which is g/|g| = ±1: every weight "
          "moves by about the learning rate, whatever its gradient.", "Write m̂ and v̂ after "
          "one step with bias correction."),
        Q("b", "Position t predicts token t + 1; the prompt's labels are -100 and are left out, "
          "so only answer tokens are taught.", "What does the label -100 mean?"),
    ),
    "11": (
        Q(8, "BA is built from r = 8 columns of B: its rank is at most 8, whatever d is.",
          "ΔW = B·A with B of shape d × r."),
        Q("a", "alpha/r scales the update: at r = 64 and alpha 16 it is 0.25, at r = 1 it is 16.",
          "Compute alpha / r for both ranks."),
        Q("b", "Merging adds (alpha/r)·BA into W once: the merged model has no extra layers and "
          "runs as fast as the base.", "What is left of the adapter after W' = W + ΔW?"),
    ),
    "12": (
        Q(4.5, "4 bits per code plus a 32-bit absmax shared by 64 weights: 4 + 32/64 = 4.5.",
          "Spread the block's one fp32 constant over its 64 weights.", 0.01),
        Q("a", "NF4's levels are quantiles of a normal distribution, so each is used about "
          "equally often by normally distributed weights: less rounding error at 4 bits.",
          "Where do the weights of a layer lie, and where are NF4's levels?"),
        Q("c", "The frozen base is only read, so it can be stored in 4 bits; the adapters, "
          "their gradients and optimizer state stay in full precision.", "Which tensors does "
          "the optimizer update?"),
    ),
    "13": (
        Q(230400, "20 tokens × 30 layers × 2 (key and value) × 192 (3 key/value heads × 64) = "
          "230,400.", "Keys and values have kv_heads × head_dim numbers, not hidden."),
        Q("b", "A random key competes for attention with the real ones from the first step; "
          "LoRA's update starts at zero and changes nothing.", "What does attention do with a "
          "key that no word produced?"),
        Q("a", "The prefix changes what the frozen model sees, not its weights: it can steer "
          "behaviour the model has, not add a skill.", "Which weights does prefix tuning change?"),
    ),
    "14": (
        Q(11520, "20 soft tokens × 576 (the embedding size) = 11,520 numbers.",
          "One input embedding per soft token."),
        Q("a", "Lester et al. found prompt tuning closes the gap to fine-tuning only at about "
          "10B parameters: at 135M it is expected to be weak.", "What does the paper's title "
          "say the method's power depends on?"),
        Q("b", "Initialised from text, the soft prompt starts as a readable sentence the model "
          "has seen; random vectors are far from every embedding it knows.", "Which start "
          "does the model already know how to read?"),
    ),
    "15": (
        Q("b", "A process's peak resident memory never goes down: a second run in the same "
          "process reports the first run's peak if it was higher.", "What does ru_maxrss "
          "remember?"),
        Q(112, "16 bytes per weight × 7e9 weights = 112 GB, before any activation.",
          "Mixed precision still needs about 16 bytes per trained weight.", 0.05),
        Q("c", "With 16 problems, a difference whose 95% interval contains zero cannot tell "
          "the methods apart.", "What does an interval that contains zero say?"),
    ),
    "20": (
        Q("b", "Training loss measures the training set; only held-out validation loss can "
          "turn up when the model memorises.", "Which loss is measured on questions the model "
          "never trains on?"),
        Q(3, "The rule stops after `patience` evaluations in a row without a better loss: with "
          "patience 2 and the best at evaluation 1, it stops after evaluation 3.",
          "Count the evaluations that were no better than the best."),
        Q("c", "The validation set chose the early-stopping weights, so it is no longer a fair "
          "judge of them: report the test split.", "Which split has not influenced any "
          "choice?"),
    ),
    "21": (
        Q("a", "Nothing taught the model to write <|im_end|> after an answer: it runs on to "
          "the token limit.", "Which label teaches the model to stop?"),
        Q("b", "The loss is measured in the training format, which the model did learn: "
          "nothing in the loss curve warns you.", "In which format is the validation loss "
          "computed?"),
        Q("c", "`</s>` is Llama-2's end token; for SmolLM2 it is four ordinary characters, so "
          "the model writes it and keeps going.", "Is </s> a special token for SmolLM2?"),
    ),
    "22": (
        Q("b", "'positive' is lowercase: a format-only check passes it although it answers "
          "nothing. Checking topic and substance too removes the vacuous pass.",
          "Does a one-word label satisfy 'answer in lowercase'?"),
        Q("a", "Each probe is answered before and after: the difference per probe cancels "
          "what each probe contributes to both, so the paired interval is narrower.",
          "What cancels when you subtract item by item?"),
        Q("c", "In these runs the gentle schedule (a tenth of the rate) learned the task and "
          "kept most of the pass rate; LoRA at its usual rate collapsed too.", "Read the "
          "table of mitigations."),
    ),
    "23": (
        Q(0.5, "gold = correct · min(1, 15/30) = 0.5 for a correct 30-word answer.",
          "min(1, 15 / words) for a correct answer.", 0.01),
        Q("b", "The proxy pays min(words, 30)/60 for length whether or not the answer is right.",
          "Compute the length term of the proxy for 30 words."),
        Q("a", "A penalty of 1/60 per word cancels exactly what the proxy pays per word; the "
          "pay for correct answers stays.", "What does the proxy pay per word?"),
    ),
    "24": (
        Q("b", "Log-likelihood ranks the choices; a model trained on one-word answers can still "
          "rank the right one first while its written answers fail.", "What does each view "
          "read: probabilities or generated text?"),
        Q("a", "Wilson's interval stays inside 0..1 and is not zero-width at 0 of n, unlike "
          "p ± 1.96·se.", "What is p ± 1.96·se at p = 0?"),
        Q("c", "Only when the whole 95% interval of the paired change lies below zero do we "
          "call it a fall beyond noise.", "Where must the interval lie?"),
    ),
}


def _same(given, q: Question) -> bool:
    if isinstance(q.answer, str):
        return isinstance(given, str) and given.strip().lower().strip("()") == q.answer
    try:
        value = float(str(given).replace(",", "").replace("_", ""))
    except (TypeError, ValueError):
        return False
    return abs(value - q.answer) <= q.tol * abs(q.answer) + 1e-9


def concepts(notebook: str, *answers) -> None:
    """Check the three concept questions of a notebook; print a line each (never raises)."""
    for i, (given, q) in enumerate(zip(answers, QUESTIONS[notebook]), start=1):
        if given is Ellipsis or given is None:
            print(f"Question {i}: write your answer in place of `...` and run the cell again.")
        elif _same(given, q):
            print(f"Question {i}: right. {q.explanation}")
        else:
            print(f"Question {i}: not quite ({given!r}). Hint: {q.hint} Try again.")


def predict(exercise: str, prediction, observed, explanation: str = "") -> None:
    """Compare a prediction with what the notebook's own runs show (self-checked, not graded)."""
    if prediction is Ellipsis or prediction is None:
        print(f"Exercise {exercise}: write your prediction first, then run this cell.")
        return
    norm = (lambda v: v.strip().lower()) if isinstance(observed, str) else (lambda v: v)
    try:
        same = norm(prediction) == norm(observed)
    except Exception:
        same = False
    verdict = "as you predicted" if same else f"not what you predicted ({prediction!r})"
    print(f"Exercise {exercise}: the runs show {observed!r}: {verdict}.")
    if explanation:
        print(explanation)
