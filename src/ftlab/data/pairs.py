"""Read a user's JSONL file of preference rows, through the same door as SFT files.

Preference tuning learns from judgements, not from answers alone. DPO, IPO, ORPO and SimPO
learn from paired rows: one prompt, a ``chosen`` answer and a ``rejected`` one. KTO learns
from unpaired rows: one answer with a thumbs-up or thumbs-down ``label``, so a file of
single ratings (or pairs split in two) is enough. The file handling (encoding, BOM, UTF-16,
over-long lines, bad JSON, blank lines, empty or missing file) is ``read_jsonl``'s; this
module checks the row shape, and every problem is a ``DatasetError`` naming file and line.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from ..errors import DatasetError
from .jsonl import MAX_LINE_BYTES, read_jsonl

PAIR_SHAPE = '{"prompt": ..., "chosen": ..., "rejected": ...}'
UNPAIRED_SHAPE = '{"prompt": ..., "completion": ..., "label": true}'
_PAIR_EXAMPLE = '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}'
_UNPAIRED_EXAMPLE = '{"prompt": "2+2?", "completion": "4", "label": true}'
_OPTIONAL = ("system", "meta")
_JSON_KINDS = {bool: "true/false", int: "a number", float: "a number", str: "a string",
               list: "an array", dict: "an object", type(None): "null"}


def read_pairs(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> list[dict]:
    """Rows ``{"prompt", "chosen", "rejected"}`` (with ``system`` and ``meta`` if given) for
    DPO-style training; a row whose two answers are the same text teaches nothing and is
    refused."""
    return read_jsonl(path, max_line_bytes, check=_check_pair, example=_PAIR_EXAMPLE,
                      knob="pref.path")


def read_unpaired(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> list[dict]:
    """Rows ``{"prompt", "completion", "label"}`` (``label`` true or false) for KTO.

    KTO weighs desirable against undesirable answers, so a file with only one kind of label
    is refused as a whole.
    """
    rows = read_jsonl(path, max_line_bytes, check=_check_unpaired,
                      example=_UNPAIRED_EXAMPLE, knob="pref.path")
    labels = {row["label"] for row in rows}
    if labels != {True, False}:
        only = "true" if True in labels else "false"
        missing = "false" if only == "true" else "true"
        raise DatasetError(str(path), f"every row is labelled {only}: KTO needs both "
                           "desirable (true) and undesirable (false) rows",
                           f'Add rows with "label": {missing}.')
    return rows


def pairs_to_unpaired(rows: list[dict]) -> list[dict]:
    """Each pair as two KTO rows: its chosen answer desirable, its rejected one not, so a
    pairs file can train KTO too."""
    out = []
    for row in rows:
        for answer, label in ((row["chosen"], True), (row["rejected"], False)):
            new = {"prompt": row["prompt"], "completion": answer, "label": label}
            if "system" in row:
                new["system"] = row["system"]
            if "meta" in row:
                new["meta"] = dict(row["meta"])
            out.append(new)
    return out


def _check_pair(row: object, where: str) -> dict:
    out = _check_fields(row, where, ("prompt", "chosen", "rejected"), PAIR_SHAPE)
    if out["chosen"].strip() == out["rejected"].strip():
        raise DatasetError(where, "'chosen' and 'rejected' are the same text: nothing to "
                           "prefer", "Give a worse answer as 'rejected', or drop the row.")
    return out


def _check_unpaired(row: object, where: str) -> dict:
    out = _check_fields(row, where, ("prompt", "completion", "label"), UNPAIRED_SHAPE)
    label = out["label"]
    if not isinstance(label, bool):
        raise DatasetError(where, f"'label' is {_kind(label)} ({_shown(label)}), expected "
                           "true or false", 'Write a JSON boolean, without quotes: '
                           '"label": true or "label": false.')
    return out


def _check_fields(row: object, where: str, required: tuple[str, ...], shape: str) -> dict:
    """The row's known keys, each checked: an object, no unknown or missing key, text fields
    non-empty strings, ``meta`` an object."""
    if not isinstance(row, dict):
        raise DatasetError(where, f"{_kind(row)} where a JSON object was expected",
                           f"Each line must be an object: {shape}.")
    allowed = (*required, *_OPTIONAL)
    for key in row:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DatasetError(where, f"unknown key {key!r}{hint}",
                               f"Allowed keys: {', '.join(allowed)}.")
    missing = [k for k in required if k not in row]
    if missing:
        names = " and ".join(f"'{k}'" for k in missing)
        raise DatasetError(where, f"the row has no {names}", f"Each line must be {shape}.")
    for key in (*required, "system"):
        if key == "label" or key not in row:
            continue
        value = row[key]
        if not isinstance(value, str):
            raise DatasetError(where, f"{key!r} is {_kind(value)}, expected a string",
                               "Give it as text, in quotes.")
        if not value.strip():
            raise DatasetError(where, f"{key!r} is empty", "Fill it in or drop the row.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise DatasetError(where, f"{key!r} holds an unpaired surrogate escape "
                               "(\\ud800-\\udfff), which is not a character",
                               "Re-export the file as UTF-8.") from None
    if "meta" in row and not isinstance(row["meta"], dict):
        raise DatasetError(where, f"'meta' is {_kind(row['meta'])}, expected an object",
                           "Drop it or make it {...}.")
    return {k: row[k] for k in allowed if k in row}


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), "a value")


def _shown(value: object) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else f"{shown[:30]}..."
