"""Read a user's JSONL dataset: the one door every dataset file goes through.

Every row is checked before any training starts, and every problem is a ``DatasetError``
naming the file, the line and what to do: bytes that are not UTF-8 (a file saved from Excel
in Latin-1), a line that is not JSON, a row without a user message or with empty content,
a line too long to be a training example (refused after reading at most ``MAX_LINE_BYTES``
of it, never read whole), a folder or a missing file given as the path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DatasetError
from .formats import check_row

# A training example is a few kilobytes; a line of more than this is a wrong file (a dump,
# a binary, a whole corpus on one line), and reading it whole could exhaust memory.
MAX_LINE_BYTES = 1_000_000
# Every row is checked, about 25 µs a row (measured on 2 cores): a file of more than this
# many bytes (some 60,000 short rows, over a second) shows a progress bar while it is read.
PROGRESS_BYTES = 5_000_000

_UTF8_FIX = ("Re-save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8'; in an editor: "
             "encoding UTF-8).")
_SFT_EXAMPLE = '{"prompt": "2+2?", "completion": "4"}'


def read_jsonl(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES, *,
               check: Callable[[object, str], dict] | None = None,
               example: str = _SFT_EXAMPLE, knob: str = "data.path") -> list[dict]:
    """Rows of a JSONL file: chats (``messages``) or ``prompt``/``completion`` pairs.

    A ``prompt``/``completion`` row becomes a two-message chat. Each row keeps (or gets) a
    ``meta`` object whose ``answer`` is the last message's content.

    ``check(row, where)`` turns each parsed line into a row or raises ``DatasetError``; it
    defaults to the SFT shape above, and another shape (preference pairs) passes its own so
    that its files get the same encoding, size and JSON handling. ``example`` is the row
    shown when the file holds none; ``knob`` the setting a message tells the user to fix.
    """
    check = _check if check is None else check
    if not isinstance(path, (str, os.PathLike)):
        raise DatasetError(repr(path), "is not a file path", f"Set {knob} to a .jsonl file.")
    if not str(path).strip():
        raise DatasetError(knob, "is empty", "Set it to a .jsonl file.")
    p = Path(path)
    _check_path(p, knob)
    rows = []
    try:
        size = p.stat().st_size
        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"Reading {p.name}",
                   disable=size < PROGRESS_BYTES, leave=False)
        with p.open("rb") as f, bar:
            lineno, done = 0, 0
            while True:
                raw = f.readline(max_line_bytes + 1)
                if not raw:
                    break
                lineno += 1
                done += len(raw)
                if done >= 1 << 20:  # a bar update per megabyte, not per row
                    bar.update(done)
                    done = 0
                where = f"{p.name}, line {lineno}"
                if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                    raise DatasetError(where, f"the line is longer than {max_line_bytes:,} "
                                       "bytes, far more than a training example", "Each line "
                                       "must be one JSON object (one example); check that "
                                       "this is the right file.", line=lineno)
                row = _parse_line(raw, lineno, where, check)
                if row is not None:
                    rows.append(row)
    except OSError as e:
        raise DatasetError(str(p), f"could not be read ({e.strerror or type(e).__name__})",
                           f"Check the file's permissions and {knob}.") from None
    if not rows:
        raise DatasetError(str(p), "the file holds no rows",
                           f"Add one JSON object per line, e.g. {example}.")
    return rows


def _check_path(p: Path, knob: str = "data.path") -> None:
    if p.is_dir():
        raise DatasetError(str(p), "is a folder, not a file",
                           f"Set {knob} to a .jsonl file inside it.")
    if not p.exists():
        raise DatasetError(str(p), "no such file", f"Check {knob} (relative paths start "
                           f"from the current folder, {Path.cwd()}).")
    if not p.is_file():
        raise DatasetError(str(p), "is not a regular file", f"Set {knob} to a .jsonl file.")


def _parse_line(raw: bytes, lineno: int, where: str,
                check: Callable[[object, str], dict] | None = None) -> dict | None:
    """One line -> a checked row (None for a blank line); any problem -> DatasetError."""
    if lineno == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")  # the BOM of Excel's "UTF-8" export
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if lineno == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise DatasetError(where, "the file is saved as UTF-16 (Windows calls it "
                               "'Unicode'), not UTF-8", _UTF8_FIX, line=lineno) from None
        bad = raw[e.start:e.start + 1].hex()
        guess = raw.decode("latin-1")[max(0, e.start - 15):e.start + 5].strip()
        raise DatasetError(where, f"not UTF-8 text (byte 0x{bad} at byte {e.start + 1}, near "
                           f"{guess!r}; the file looks saved as Latin-1 or Windows-1252)",
                           _UTF8_FIX, line=lineno) from None
    if not text.strip():
        return None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(where, f"not valid JSON ({e.msg} at column {e.colno})",
                           "Each line must be one JSON object.", line=lineno) from None
    except (ValueError, RecursionError) as e:  # 5000-digit numbers, [[[[...]]]] nested deep
        raise DatasetError(where, f"not JSON that ftlab can read ({str(e)[:80]})",
                           "Each line must be one JSON object.", line=lineno) from None
    try:
        return (check or _check)(row, where)
    except DatasetError as e:
        e.line = lineno
        raise


def _check(row: object, where: str) -> dict:
    if not isinstance(row, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number",
                bool: "true/false", type(None): "null"}.get(type(row), "a value")
        raise DatasetError(where, f"{kind} where a JSON object was expected",
                           'Each line must be an object: {"messages": [...]} or '
                           '{"prompt": ..., "completion": ...}.')
    if "messages" not in row and ("prompt" in row or "completion" in row):
        if not (isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str)):
            raise DatasetError(where, "'prompt' and 'completion' must be strings",
                               "Give both, as text.")
        row = {"messages": [{"role": "user", "content": row["prompt"]},
                            {"role": "assistant", "content": row["completion"]}],
               **({"meta": row["meta"]} if "meta" in row else {})}
    check_row(row, where)
    msgs = row["messages"]
    if not any(m["role"] == "user" for m in msgs[:-1]):
        raise DatasetError(where, "the row has no user message", "A row is a chat: "
                           "[system,] user, assistant; the assistant's answer follows a user "
                           "message.")
    for i, m in enumerate(msgs):
        if not m["content"].strip():
            raise DatasetError(f"{where}, message {i}", f"the {m['role']} message is empty",
                               "Fill it in or drop the row.")
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError:
            raise DatasetError(f"{where}, message {i}", "the text holds an unpaired "
                               "surrogate escape (\\ud800-\\udfff), which is not a character",
                               "Re-export the file as UTF-8.") from None
    meta = row.setdefault("meta", {})
    if not isinstance(meta, dict):
        raise DatasetError(where, "'meta' must be an object", "Drop it or make it {...}.")
    meta.setdefault("answer", msgs[-1]["content"])
    return row
