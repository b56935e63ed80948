"""Instruction-following probes (IFEval-like) and fixed sample prompts.

Each probe is a small open task ("Describe the ocean.") plus one verifiable instruction
("Answer in fewer than 20 words."). Code checks the instruction (``ftlab.evaluate.checks``),
never the content, so a probe measures *obeying* and nothing else. None of these prompts
appears in any training task: they measure whether fine-tuning on one task left the
model able to follow instructions it was never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (topic prompt, a word that fits the topic, a word the topic invites but can be avoided)
TOPICS: list[tuple[str, str, str]] = [
    ("Describe the ocean.", "waves", "water"),
    ("Explain why exercise is good for people.", "heart", "health"),
    ("Tell me about the city of Paris.", "river", "France"),
    ("Describe how bread is made.", "oven", "flour"),
    ("Explain what a computer does.", "memory", "data"),
    ("Describe a day in the life of a cat.", "nap", "cat"),
    ("Tell me about the planet Mars.", "red", "planet"),
    ("Explain how rain forms.", "clouds", "water"),
    ("Describe a perfect weekend.", "friends", "relax"),
    ("Explain why people read books.", "stories", "read"),
]
START_WORDS = ["Today", "Honestly", "Imagine", "Yes", "Well", "First", "Surprisingly",
               "Everyone", "Sometimes", "Clearly"]
END_PHRASE = "Is there anything else I can help with?"


def _instruction(kind: str, i: int) -> tuple[str, dict]:
    """The instruction text and the checker's arguments for probe type ``kind``, topic ``i``."""
    _, include, exclude = TOPICS[i]
    n_small, n_words = 2 + i % 4, (15, 20, 25, 30)[i % 4]
    table: dict[str, tuple[str, dict]] = {
        "all_caps": ("Your entire answer must be in English capital letters only; do not use "
                     "any lowercase letters.", {}),
        "all_lowercase": ("Your entire answer must be in lowercase letters; do not use any "
                          "capital letters.", {}),
        "max_words": (f"Answer in fewer than {n_words} words.", {"n": n_words}),
        "min_words": (f"Answer with at least {n_words + 20} words.", {"n": n_words + 20}),
        "bullet_count": (f"Your answer must contain exactly {n_small} bullet points, written "
                         "as markdown bullets such as:\n* This is a point.", {"n": n_small}),
        "json_output": ("Your entire output must be valid JSON: reply with one JSON object "
                        "and nothing else.", {}),
        "include_keyword": (f'Include the word "{include}" in your answer.',
                            {"keyword": include}),
        "exclude_keyword": (f'Do not use the word "{exclude}" anywhere in your answer.',
                            {"keyword": exclude}),
        "end_phrase": (f'Finish your answer with the exact phrase "{END_PHRASE}" and write '
                       "nothing after it.", {"phrase": END_PHRASE}),
        "paragraph_count": (f"Write exactly {2 + i % 2} paragraphs, separated from each other "
                            "by one blank line.", {"n": 2 + i % 2}),
        "start_word": (f'Start your answer with the word "{START_WORDS[i]}".',
                       {"word": START_WORDS[i]}),
        "no_commas": ("Do not use any commas in your answer.", {}),
    }
    return table[kind]


PROBE_TYPES: tuple[str, ...] = (
    "all_caps", "all_lowercase", "max_words", "min_words", "bullet_count", "json_output",
    "include_keyword", "exclude_keyword", "end_phrase", "paragraph_count", "start_word",
    "no_commas",
)


@dataclass(frozen=True)
class Probe:
    """One prompt with one instruction that code can check."""

    id: str
    type: str
    prompt: str
    kwargs: dict = field(default_factory=dict, hash=False)

    @property
    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}]


def load_probes() -> list[Probe]:
    """All probes: every instruction type crossed with every topic (12 x 10 = 120)."""
    probes = []
    for kind in PROBE_TYPES:
        for i, (topic, _, _) in enumerate(TOPICS):
            text, kwargs = _instruction(kind, i)
            probes.append(Probe(f"{kind}/{i}", kind, f"{topic} {text}", kwargs))
    return probes


# Fixed prompts answered before and after training, to read how outputs changed.
SAMPLE_PROMPTS: list[str] = [
    "What is the capital of France?",
    "Sam has 12 marbles and gets 7 more. How many marbles does Sam have now?",
    'Extract the person\'s name, age, city and job from the sentence. Reply with only a JSON '
    'object with the keys "name", "age", "city" and "job".\n'
    "Sentence: Lucia is a 29-year-old doctor who lives in Rome.",
    "Review: The headphones broke after two days.\nIs this review positive or negative?",
    "Write a short poem about autumn.",
    "Give me three tips for sleeping better, as a bulleted list.",
    "Explain photosynthesis to a ten-year-old in two sentences.",
    "Translate 'good morning' into Spanish.",
]
