"""RLHF prompts whose correct answer is known, so a gold reward can be computed by code.

Arithmetic word problems come from ``ftlab.data.make_task`` (the same generator the supervised
labs use); a short list of hand-written facts adds questions whose answer is a word. Each
prompt carries a concise correct reference answer and a concise wrong one: preference pairs
and the length-bias curves are built from them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..data import make_task
from ..errors import ConfigError

Messages = list[dict]


@dataclass(frozen=True)
class Prompt:
    """A question with checkable answers. ``answers[0]`` is canonical, the rest are aliases."""

    question: str
    answers: tuple[str, ...]
    reference: str  # a concise correct answer: what the gold reward likes best
    distractor: str  # a concise wrong answer of the same shape
    kind: str  # "arithmetic" or "fact"

    def chat(self) -> Messages:
        """The conversational prompt (one user turn), as TRL's trainers take it."""
        return [{"role": "user", "content": self.question}]


# question, correct answers (canonical first), a plausible wrong answer
FACTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("What is the capital of France?", ("Paris",), "Lyon"),
    ("What is the capital of Italy?", ("Rome",), "Milan"),
    ("What is the capital of Japan?", ("Tokyo",), "Osaka"),
    ("What is the capital of Germany?", ("Berlin",), "Munich"),
    ("What is the capital of Spain?", ("Madrid",), "Barcelona"),
    ("What is the capital of Canada?", ("Ottawa",), "Toronto"),
    ("What is the capital of Australia?", ("Canberra",), "Sydney"),
    ("What is the capital of Egypt?", ("Cairo",), "Alexandria"),
    ("What is the capital of Kenya?", ("Nairobi",), "Mombasa"),
    ("What is the capital of Brazil?", ("Brasilia", "Brasília"), "Rio de Janeiro"),
    ("Which planet is closest to the Sun?", ("Mercury",), "Venus"),
    ("Which planet is the largest in the solar system?", ("Jupiter",), "Saturn"),
    ("Which planet is known as the Red Planet?", ("Mars",), "Venus"),
    ("What gas do plants take in from the air to make sugar?", ("carbon dioxide", "CO2"),
     "oxygen"),
    ("What is the chemical symbol for gold?", ("Au",), "Ag"),
    ("What is the chemical symbol for iron?", ("Fe",), "Ir"),
    ("What is the freezing point of water in degrees Celsius?", ("0", "zero"), "10"),
    ("What is the boiling point of water in degrees Celsius?", ("100",), "90"),
    ("How many legs does a spider have?", ("8", "eight"), "6"),
    ("How many days are there in a week?", ("7", "seven"), "5"),
    ("How many continents are there?", ("7", "seven"), "5"),
    ("How many sides does a hexagon have?", ("6", "six"), "8"),
    ("How many minutes are in an hour?", ("60", "sixty"), "100"),
    ("What is the largest ocean on Earth?", ("Pacific",), "Atlantic"),
    ("What is the longest river in Africa?", ("Nile",), "Congo"),
    ("Who wrote Romeo and Juliet?", ("Shakespeare",), "Dickens"),
    ("Who painted the Mona Lisa?", ("Leonardo da Vinci", "da Vinci", "Leonardo"),
     "Michelangelo"),
    ("What is the hardest natural material?", ("diamond",), "granite"),
    ("What is the main language spoken in Brazil?", ("Portuguese",), "Spanish"),
    ("Which animal is known as the king of the jungle?", ("lion",), "tiger"),
    ("What color do you get by mixing blue and yellow?", ("green",), "purple"),
    ("What is the opposite of hot?", ("cold",), "warm"),
    ("Which organ pumps blood through the body?", ("heart",), "liver"),
    ("What is frozen water called?", ("ice",), "steam"),
    ("Which star is at the centre of our solar system?", ("Sun", "the sun"), "Sirius"),
    ("What do bees make?", ("honey",), "milk"),
)


# Every third fact is held out: ``make_prompts`` never returns these, so a policy's answers
# to them (``ftlab.rlhf.GoldWatch``) show what it learned, not what it was trained on.
HELDOUT_FACTS = FACTS[::3]


def heldout_prompts() -> list[Prompt]:
    """The held-out questions (``HELDOUT_FACTS``): the same for every seed and run."""
    return [_fact(*f) for f in HELDOUT_FACTS]


# Questions no training set draws from, each answered by a word or a name (a number answer
# must be the *last* number of a text, so padding after it would turn it wrong by that rule
# alone): with ``HELDOUT_FACTS``, what ``substance_prompts`` asks.
MORE_FACTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("What is the capital of Russia?", ("Moscow",), "Saint Petersburg"),
    ("What is the capital of China?", ("Beijing",), "Shanghai"),
    ("What is the capital of India?", ("New Delhi", "Delhi"), "Mumbai"),
    ("What is the capital of Mexico?", ("Mexico City",), "Guadalajara"),
    ("What is the capital of Argentina?", ("Buenos Aires",), "Cordoba"),
    ("What is the capital of Greece?", ("Athens",), "Thessaloniki"),
    ("What is the capital of Portugal?", ("Lisbon",), "Porto"),
    ("What is the capital of Norway?", ("Oslo",), "Bergen"),
    ("What is the capital of Sweden?", ("Stockholm",), "Gothenburg"),
    ("What is the capital of Ireland?", ("Dublin",), "Cork"),
    ("What is the capital of Turkey?", ("Ankara",), "Istanbul"),
    ("What is the capital of South Korea?", ("Seoul",), "Busan"),
    ("What is the capital of Thailand?", ("Bangkok",), "Phuket"),
    ("What is the capital of Peru?", ("Lima",), "Cusco"),
    ("What is the capital of Poland?", ("Warsaw",), "Krakow"),
    ("Which planet is famous for its rings?", ("Saturn",), "Jupiter"),
    ("Which planet do we live on?", ("Earth",), "Mars"),
    ("What gas do people need to breathe to stay alive?", ("oxygen",), "nitrogen"),
    ("What is the chemical symbol for silver?", ("Ag",), "Au"),
    ("What is the largest mammal?", ("blue whale", "whale"), "elephant"),
    ("What is the tallest animal?", ("giraffe",), "elephant"),
    ("What is the fastest land animal?", ("cheetah",), "lion"),
    ("What does a caterpillar turn into?", ("butterfly", "butterflies", "moth", "moths"),
     "beetle"),
    ("What is the largest desert in Africa?", ("Sahara",), "Kalahari"),
    ("What is the tallest mountain in the world?", ("Everest",), "K2"),
    ("Which language is spoken in Germany?", ("German",), "French"),
    ("Who developed the theory of relativity?", ("Einstein",), "Newton"),
    ("Who discovered penicillin?", ("Fleming",), "Pasteur"),
    ("What colour is the sky on a clear day?", ("blue",), "green"),
    ("Which metal is liquid at room temperature?", ("mercury",), "lead"),
    ("Which farm animal says moo?", ("cow", "cows"), "sheep"),
    ("What colour is a ripe banana?", ("yellow",), "green"),
    ("Which instrument has black and white keys?", ("piano",), "guitar"),
    ("In which country are the pyramids of Giza?", ("Egypt",), "Mexico"),
    ("What is the largest country by area?", ("Russia",), "Canada"),
    ("What is the currency of Japan?", ("yen",), "won"),
)


def substance_prompts() -> list[Prompt]:
    """``heldout_prompts`` and ``MORE_FACTS``: 48 questions never trained on, the same for
    every seed and run, enough that one answer is 2% of a share (12 alone: 8%)."""
    return heldout_prompts() + [_fact(*f) for f in MORE_FACTS]


def make_prompts(n: int, seed: int = 0, fact_fraction: float = 0.25) -> list[Prompt]:
    """``n`` distinct prompts (arithmetic plus facts), the same list for the same seed.

    Facts come from those not held out (at most ``len(FACTS) - len(HELDOUT_FACTS)``); the
    rest of the ``n`` are arithmetic word problems.
    """
    if not 10 <= n <= 5000:
        raise ConfigError("n", n, "a number >= 10 and <= 5000",
                          "The prompt set needs enough questions to split off held-out pairs.")
    if not 0.0 <= fact_fraction <= 1.0:
        raise ConfigError("fact_fraction", fact_fraction, "a number >= 0.0 and <= 1.0")
    rng = random.Random(seed)
    pool = [f for f in FACTS if f not in HELDOUT_FACTS]
    n_facts = min(round(n * fact_fraction), len(pool))
    facts = [_fact(*f) for f in rng.sample(pool, n_facts)]
    splits = make_task("arithmetic", max(n - n_facts, 10), seed=seed)
    rows = splits.train + splits.validation + splits.test
    arithmetic = [_arithmetic(r, rng) for r in rows[:n - n_facts]]
    prompts = arithmetic + facts
    rng.shuffle(prompts)
    return prompts


def _fact(question: str, answers: tuple[str, ...], wrong: str) -> Prompt:
    return Prompt(question, answers, f"The answer is {answers[0]}.", f"The answer is {wrong}.",
                  "fact")


def _arithmetic(row: dict, rng: random.Random) -> Prompt:
    number = row["meta"]["number"]
    wrong = number + rng.choice([-3, -2, -1, 1, 2, 3, 10])
    return Prompt(row["messages"][0]["content"], (str(number),), row["meta"]["answer"],
                  f"The answer is {wrong}.", "arithmetic")


def policy_rows(prompts: Sequence[Prompt]) -> list[dict]:
    """GRPO rows: the question as a chat with an empty system turn, and its ``answers``.

    The empty system turn replaces the template's default system prompt (about 20 tokens
    that every completion would otherwise be scored behind, as the learned reward model
    also leaves out). GRPOTrainer passes every extra column to the reward functions as a
    keyword argument, so the rewards in ``ftlab.rlhf.rewards`` read ``answers`` directly.
    """
    return [{"prompt": [{"role": "system", "content": ""}, *p.chat()],
             "answers": list(p.answers)} for p in prompts]


_USER_TURN = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.DOTALL)


def question_of(prompt: str | Messages) -> str:
    """The last user turn of a prompt, whatever shape GRPO or a notebook hands over.

    Conversational prompts are message lists; standard ones are plain strings, which may
    already be rendered with the chat template.
    """
    if isinstance(prompt, str):
        turns = _USER_TURN.findall(prompt)
        return (turns[-1] if turns else prompt).strip()
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1].strip() if users else ""


def completion_text(completion: str | Messages) -> str:
    """The answer text of a completion (GRPO gives a message list for conversational data)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")
