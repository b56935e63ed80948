"""Instruction-following probes (IFEval-like) and fixed sample prompts.

Each probe is a small open task ("Describe the ocean.") plus one verifiable instruction
("Answer in fewer than 20 words."). Code checks both (``ftlab.evaluate.checks``): the
instruction's format, and that the answer does what was asked at all: it addresses the
topic (uses at least one of the topic's words) and has substance (a few words, unless the
instruction asks for fewer). Without the second part a collapsed model that answers
"positive" to everything would pass "all lower case", "no commas" and "fewer than 20 words"
for free. None of these prompts appears in any training task: they measure whether
fine-tuning on one task left the model able to follow instructions it was never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    """An open task, two keywords for its instructions, and the words that show an answer
    is about it.

    ``words`` are lower-case words or stems; an answer word matches one when equal to it
    or to it plus a common ending (``wave`` matches "waves", ``bake`` "baked"; see
    ``ftlab.evaluate.checks.on_topic``). They avoid the words of ftlab's training answers
    (labels, "The answer is N.", the extraction keys name/age/city/job and its job names),
    so an answer in a training form never looks on topic by accident.
    """

    prompt: str
    include: str  # a word that fits the topic ("Include the word ...")
    exclude: str  # a word the topic invites but an answer can avoid ("Do not use ...")
    words: tuple[str, ...]


def _topic(prompt: str, include: str, exclude: str, words: str) -> Topic:
    return Topic(prompt, include, exclude, tuple(words.split()))


TOPICS: list[Topic] = [
    _topic("Describe the ocean.", "waves", "water",
           "ocean sea wave water tide salt salty fish whale shark coral reef marine beach shore "
           "coast current pacific atlantic island sand underwater seaweed dolphin blue deep "
           "vast"),
    _topic("Explain why exercise is good for people.", "heart", "health",
           "exercise exercising heart health healthy fit fitness muscle body strength strong "
           "weight energy workout sport run running walk walking mood stress sleep disease "
           "blood lung bone calorie active activity physical mental"),
    _topic("Tell me about the city of Paris.", "river", "France",
           "paris parisian france french eiffel tower louvre seine river capital museum notre "
           "dame cathedral art artist fashion cafe café croissant europe european arc "
           "triomphe montmartre champs boulevard romance romantic"),
    _topic("Describe how bread is made.", "oven", "flour",
           "bread dough flour yeast oven bake baking knead kneading wheat water salt sugar loaf "
           "loaves rise rising ferment fermentation crust grain mix mixing ingredient recipe "
           "butter"),
    _topic("Explain what a computer does.", "memory", "data",
           "computer computing compute data memory program software hardware processor cpu "
           "instruction calculation calculate information process processing store storage "
           "input output code machine digital internet file keyboard screen electronic "
           "binary"),
    _topic("Describe a day in the life of a cat.", "nap", "cat",
           "cat kitten kitty feline purr purring meow nap sleep whisker paw fur tail mouse "
           "mice pet owner litter play hunt hunting bird toy scratch claw curl sunbeam sun "
           "food bowl"),
    _topic("Tell me about the planet Mars.", "red", "planet",
           "mars martian red planet rover dust crater orbit sun solar system space nasa "
           "mission olympus mons volcano mountain moon phobos deimos rock rocky atmosphere "
           "surface earth desert cold ice iron rust telescope"),
    _topic("Explain how rain forms.", "clouds", "water",
           "rain raindrop rainfall cloud water vapor vapour evaporate evaporation condense "
           "condensation droplet drop sky air cool cooling temperature humid humidity "
           "moisture precipitation storm weather sun ocean sea lake cycle fall"),
    _topic("Describe a perfect weekend.", "friends", "relax",
           "weekend saturday sunday friend family relax relaxing rest sleep morning breakfast "
           "brunch coffee walk park hike hiking beach movie book read reading game music fun "
           "trip travel dinner meal nature garden picnic enjoy peaceful lazy"),
    _topic("Explain why people read books.", "stories", "read",
           "book read reading reader story stories novel author writer knowledge learn "
           "learning imagination imagine escape entertainment entertain fun page character "
           "world idea information literature education mind enjoy relax"),
]
START_WORDS = ["Today", "Honestly", "Imagine", "Yes", "Well", "First", "Surprisingly",
               "Everyone", "Sometimes", "Clearly"]
END_PHRASE = "Is there anything else I can help with?"


def _instruction(kind: str, i: int) -> tuple[str, dict]:
    """The instruction text and the checker's arguments for probe type ``kind``, topic ``i``."""
    include, exclude = TOPICS[i].include, TOPICS[i].exclude
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
    """One prompt with one instruction that code can check, and the topic it asks about
    (``topic_words`` empty: no topic is required, only substance)."""

    id: str
    type: str
    prompt: str
    kwargs: dict = field(default_factory=dict, hash=False)
    topic_words: tuple[str, ...] = ()

    @property
    def messages(self) -> list[dict]:
        return [{"role": "user", "content": self.prompt}]


def load_probes() -> list[Probe]:
    """All probes: every instruction type crossed with every topic (12 x 10 = 120)."""
    probes = []
    for kind in PROBE_TYPES:
        for i, topic in enumerate(TOPICS):
            text, kwargs = _instruction(kind, i)
            probes.append(Probe(f"{kind}/{i}", kind, f"{topic.prompt} {text}", kwargs,
                                topic.words))
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
