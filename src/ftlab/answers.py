"""What an answer says: its numbers, its words, and whether it gives an expected answer.

One definition of each notion, imported by every scorer (the task score, the gold and
proxy rewards, the instruction checkers), so two measurements never disagree on the same
text. The choices, and why:

- **A number** is written in digits the way English text writes it: an optional minus sign,
  thousands separated by commas, an optional decimal part. ``"1,234"`` is 1234, ``"76.0"``
  is 76, ``"-3"`` is -3, ``"7.6"`` is 7.6 (not 7 and 6). A digit run glued to the end of a
  word or number (``"Q3"``, the ``6`` of ``"176"``) is no number of its own; a hyphen after
  a digit is a dash, not a sign (``"5-3"`` holds 5 and 3). A list written ``"1,2,3"`` holds
  three numbers: a comma groups thousands only before exactly three digits. Numbers
  written as words ("seven") are not read as numbers; a prompt that accepts them lists the
  word as an answer of its own (see ``is_correct``).
- **The answer given** is the *last* number: models (and people) show their working first
  ("70 + 6 = 76"), so the last number is what they settle on; "76 - 70 = 6" answers 6.
- **Numbers are equal as numbers**: "76.0" gives 76, "76.5" does not.
- **A word** is what a reader counts: a run of letters or digits, joined across an
  apostrophe or a hyphen (``"don't"``, ``"well-known"`` are one word each) and across the
  point or comma inside a number (``"76.0"``, ``"1,234"`` are one word each). Punctuation,
  markdown marks (``*``, ``#``, ``-``), arithmetic signs and emoji are no words. Every
  length in ftlab (a probe's "fewer than 20 words", a reward's word target) uses this count.
- **A whole-word match** finds a word or phrase, case-insensitively, that is not part of a
  longer run of letters or digits: "cat" is in "The cat sat" and in "the cat's toy", not in
  "category"; "Paris" is not in "Parisian". Spaces inside a phrase match any whitespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

_NUMBER = re.compile(
    r"(?:(?<!\w)[-−])?"     # a minus sign, unless it is a dash after a word or digit
    r"(?<![\w.])"           # not the tail of a word or of another number ("176", "1.5.3")
    r"\d+(?:,\d{3})*(?!\d)"  # digits, thousands grouped by commas ("1,234")
    r"(?:\.\d+)?"           # a decimal part ("76.0"); a full stop after a number is none
)
_WORD = re.compile(r"[^\W_]+(?:(?:['’-]|(?<=\d)[.,](?=\d))[^\W_]+)*")


# -- numbers ---------------------------------------------------------------------------
def as_number(text: str) -> float | None:
    """``text`` read as one number ("76", "76.0", "1,234", "-3"), or None if it is not one."""
    s = text.strip()
    m = _NUMBER.fullmatch(s)
    return float(m.group().replace(",", "").replace("−", "-")) if m else None


def numbers(text: str) -> list[float]:
    """Every number written in digits in ``text``, in order (see the module notes)."""
    return [float(m.replace(",", "").replace("−", "-")) for m in _NUMBER.findall(text)]


def last_number(text: str) -> float | None:
    """The answer a text gives as a number: its last number, or None when it has none."""
    found = numbers(text)
    return found[-1] if found else None


def gives_number(text: str, expected: float | int | str) -> bool:
    """Does ``text`` settle on ``expected``? Its last number must equal it as a number."""
    want = expected if isinstance(expected, (int, float)) else as_number(str(expected))
    got = last_number(text)
    return want is not None and got is not None and got == float(want)


# -- words -----------------------------------------------------------------------------
def words(text: str) -> list[str]:
    """Words as a reader counts them ("don't", "well-known", "76.0" are one word each)."""
    return _WORD.findall(text)


def count_words(text: str) -> int:
    """The number of ``words``: the one length unit of every knob and check in ftlab."""
    return len(words(text))


def has_word(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive: "cat" is in "the cat sat", not in "category"."""
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    if not body:
        return False
    return re.search(rf"(?<![^\W_]){body}(?![^\W_])", text, re.IGNORECASE) is not None


# -- whole answers ---------------------------------------------------------------------
def normalize(text: str) -> str:
    """For exact match: whitespace collapsed, end punctuation dropped, lower case."""
    return re.sub(r"\s+", " ", text).strip().strip(".!").strip().lower()


def same_value(given: object, expected: object) -> bool:
    """One value (a JSON field, a label) against the expected one: equal as numbers when
    both are numbers ("34", 34 and "34.0" are one age), else equal after ``normalize``."""
    a, b = as_number(str(given)), as_number(str(expected))
    if a is not None and b is not None:
        return a == b
    return normalize(str(given)) == normalize(str(expected))


def is_correct(text: str, answers: Sequence[str]) -> bool:
    """Does ``text`` give one of the accepted ``answers``?

    A numeric answer must be the last number of the text, equal as a number ("176" is not
    76, "76.0" is); a word answer must appear as a whole word or phrase ("Paris", not
    "Parisian"). Aliases count alike: answers ("8", "eight") accept "eight legs" and "8".
    """
    for answer in answers:
        if as_number(answer) is not None:
            if gives_number(text, answer):
                return True
        elif has_word(text, answer):
            return True
    return False


_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL)


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
