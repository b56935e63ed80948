"""Checks done by code: instruction checkers, content checks, output parsers and
stray-token detection.

Every check is a pure function of the output text, so each can be unit-tested on
hand-written outputs (empty, only template tokens, JSON with trailing text ...).
An empty answer fails every instruction: saying nothing is not obeying. An instruction
probe needs both halves: the format the instruction asks for (``check_instruction``) and
an answer that addresses the request (``check_content``: on topic, with substance).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..answers import has_word, parse_json_only, words

# Template debris of other formats, or of this one where it does not belong.
STRAY_MARKERS: tuple[str, ...] = (
    "###", "[INST]", "[/INST]", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "Question:", "Answer:", "<|user|>", "<|assistant|>",
)
END_OF_TURN = "<|im_end|>"

_BULLET = re.compile(r"^\s*[*\-•]\s+(.*)$", re.MULTILINE)
# ``words`` and ``has_word`` (a word as a reader counts it, a whole-word match) are defined
# once, in ftlab.answers, and imported above: the rewards count the same words.


def stray_markers(raw: str) -> list[str]:
    """Template tokens in an output (its one closing end-of-turn token is allowed)."""
    body = raw.rstrip()
    body = body[: -len(END_OF_TURN)] if body.endswith(END_OF_TURN) else body
    return [m for m in STRAY_MARKERS if m in body]


def bullets(text: str) -> list[str]:
    """Markdown bullet items that say something (a line of bare asterisks is no bullet)."""
    return [b for b in _BULLET.findall(text) if any(c.isalnum() for c in b)]


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


# -- instruction checkers: (answer text, **probe kwargs) -> obeyed? ------------------------
Checker = Callable[..., bool]

CHECKERS: dict[str, Checker] = {
    "all_caps": lambda t: _has_letters(t) and t == t.upper(),
    "all_lowercase": lambda t: _has_letters(t) and t == t.lower(),
    "max_words": lambda t, n: 0 < len(words(t)) < n,
    "min_words": lambda t, n: len(words(t)) >= n,
    "bullet_count": lambda t, n: len(bullets(t)) == n,
    "json_output": lambda t: isinstance(parse_json_only(t), (dict, list)),
    "include_keyword": lambda t, keyword: has_word(t, keyword),
    "exclude_keyword": lambda t, keyword: bool(words(t)) and not has_word(t, keyword),
    "end_phrase": lambda t, phrase: bool(t.strip()) and t.strip().endswith(phrase),
    "paragraph_count": lambda t, n: len(_paragraphs(t)) == n,
    "start_word": lambda t, word: bool(words(t)) and words(t)[0].lower() == word.lower()
    and t.lstrip(" *#\"'").lower().startswith(word.lower()),
    "no_commas": lambda t: bool(words(t)) and "," not in t,
}


def check_instruction(kind: str, text: str, kwargs: dict | None = None) -> bool:
    """Whether ``text`` obeys an instruction of type ``kind`` (see ``CHECKERS``): its format
    only. ``check_content`` says whether the answer did what was asked at all."""
    return bool(CHECKERS[kind](text, **(kwargs or {})))


# -- content: an answer must address the request, or no format it keeps counts ----------
# Format alone is met vacuously: "positive" is all lower case, has no commas, fewer than
# 20 words and avoids any word you like. So a probe also asks that the answer be about the
# probe's topic and say something: at least MIN_SUBSTANCE_WORDS words (fewer only when the
# instruction itself asks for fewer), not one word repeated.
MIN_SUBSTANCE_WORDS = 5  # a short sentence: "The ocean is very deep."
MIN_DISTINCT_WORDS = 3  # "ocean ocean ocean ocean ocean" says one thing
# Endings that keep a topic word's meaning: wave -> waves, bake -> baked, cloud -> cloudy.
TOPIC_ENDINGS: tuple[str, ...] = ("s", "es", "d", "ed", "ing", "er", "ers", "y", "ly", "ies")
_TEMPLATE = re.compile(r"<\|[^|\s]*\|>|" + "|".join(re.escape(m) for m in STRAY_MARKERS))


def content_words(text: str) -> list[str]:
    """The answer's ``words`` once template debris ("<|im_start|>", "### Answer:") is gone."""
    return words(_TEMPLATE.sub(" ", text))


def on_topic(text: str, topic_words: Sequence[str]) -> bool:
    """Does the answer use a word of its topic (or the word plus a common ending)?

    Case-insensitive; a possessive ("cat's") and each part of a compound ("sea-salt") count.
    With no topic words, any answer is on topic.
    """
    if not topic_words:
        return True
    stems = {w.lower() for w in topic_words}
    for word in content_words(text):
        for part in re.sub(r"['’]s$", "", word.lower()).split("-"):
            if part in stems or any(part.endswith(e) and part[:-len(e)] in stems
                                    for e in TOPIC_ENDINGS):
                return True
    return False


def substance_needed(kind: str, kwargs: dict | None = None) -> int:
    """Words an answer needs to count as saying something: MIN_SUBSTANCE_WORDS, fewer only
    when the instruction caps the length below that ("fewer than 3 words" needs 2)."""
    if kind == "max_words":
        return max(1, min(MIN_SUBSTANCE_WORDS, int((kwargs or {})["n"]) - 1))
    return MIN_SUBSTANCE_WORDS


def has_substance(text: str, needed: int = MIN_SUBSTANCE_WORDS) -> bool:
    """At least ``needed`` words, not one word over and over."""
    found = [w.lower() for w in content_words(text)]
    return len(found) >= needed and len(set(found)) >= min(needed, MIN_DISTINCT_WORDS)


def check_content(kind: str, text: str, kwargs: dict | None = None,
                  topic_words: Sequence[str] = ()) -> dict[str, bool]:
    """The content half of a probe: {"on_topic": ..., "substance": ...}."""
    return {"on_topic": on_topic(text, topic_words),
            "substance": has_substance(text, substance_needed(kind, kwargs))}
