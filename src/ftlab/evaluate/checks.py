"""Checks done by code: instruction checkers, output parsers and stray-token detection.

Every check is a pure function of the output text, so each can be unit-tested on
hand-written outputs (empty, only template tokens, JSON with trailing text ...).
An empty answer fails every instruction: saying nothing is not obeying.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

# Template debris of other formats, or of this one where it does not belong.
STRAY_MARKERS: tuple[str, ...] = (
    "###", "[INST]", "[/INST]", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "Question:", "Answer:", "<|user|>", "<|assistant|>",
)
END_OF_TURN = "<|im_end|>"

_BULLET = re.compile(r"^\s*[*\-•]\s+(.*)$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL)


def words(text: str) -> list[str]:
    """Words as a reader counts them (``don't`` is one word, punctuation is none)."""
    return _WORD.findall(text)


def has_word(text: str, word: str) -> bool:
    """Whole-word, case-insensitive: "cat" is in "the cat sat", not in "category"."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text, re.I) is not None


def parse_json_only(text: str) -> object | None:
    """The value if the whole answer is one JSON value (a ```json fence allowed), else None."""
    s = text.strip()
    fenced = _FENCE.match(s)
    if fenced:
        s = fenced.group(1).strip()
    try:
        return json.loads(s)
    except (json.JSONDecodeError, ValueError):
        return None


def find_json_object(text: str) -> dict | None:
    """The first JSON object anywhere in the text (lenient: to score content, not format)."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


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
    """Whether ``text`` obeys an instruction of type ``kind`` (see ``CHECKERS``)."""
    return bool(CHECKERS[kind](text, **(kwargs or {})))
