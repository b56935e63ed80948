"""Preference files (DPO pairs, KTO thumbs-up/down rows) go through the SFT reader's door.

Every bad row is a DatasetError naming the file, the 1-based line and the field at fault,
with the shape a row should have; file-level problems (no rows, one kind of KTO label) name
the file and no line.
"""

from __future__ import annotations

import json

import pytest

from ftlab.data import pairs_to_unpaired, read_jsonl, read_pairs, read_unpaired
from ftlab.errors import DatasetError

PAIR = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
GOOD = json.dumps(PAIR)


def lines(*rows: object) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_a_good_pairs_file_round_trips(tmp_path):
    rows = [PAIR, {"system": "Be brief.", "prompt": "Capital of France?", "chosen": "Paris",
                   "rejected": "Lyon", "meta": {"source": "quiz"}}]
    p = tmp_path / "pairs.jsonl"
    p.write_bytes(lines(*rows))
    assert read_pairs(p) == rows


# (name, the bad line, phrases of the message)
BAD_PAIRS = [
    ("no rejected", {"prompt": "Q", "chosen": "A"},
     ["the row has no 'rejected'", '{"prompt": ..., "chosen": ..., "rejected": ...}']),
    ("no chosen", {"prompt": "Q", "rejected": "A"}, ["the row has no 'chosen'"]),
    ("no prompt", {"chosen": "A", "rejected": "B"}, ["the row has no 'prompt'"]),
    ("same answers", {"prompt": "Q", "chosen": "Paris", "rejected": " Paris\n"},
     ["same text", "nothing to prefer"]),
    ("chosen a number", {"prompt": "Q", "chosen": 4, "rejected": "5"},
     ["'chosen' is a number, expected a string"]),
    ("rejected null", {"prompt": "Q", "chosen": "4", "rejected": None},
     ["'rejected' is null, expected a string"]),
    ("prompt an array", {"prompt": ["Q"], "chosen": "4", "rejected": "5"},
     ["'prompt' is an array, expected a string"]),
    ("system true", {**PAIR, "system": True}, ["'system' is true/false, expected a string"]),
    ("empty chosen", {"prompt": "Q", "chosen": "", "rejected": "5"}, ["'chosen' is empty"]),
    ("blank prompt", {"prompt": "  \t", "chosen": "4", "rejected": "5"},
     ["'prompt' is empty"]),
    ("a typo", {"prompt": "Q", "chosen": "4", "rejcted": "5"},
     ["unknown key 'rejcted'", "did you mean 'rejected'?", "prompt, chosen, rejected"]),
    ("an unknown key", {**PAIR, "score": 3}, ["unknown key 'score'", "Allowed keys"]),
    ("an array row", [1, 2], ["an array where a JSON object was expected", "chosen"]),
    ("a string row", '"just text"', ["a string where a JSON object was expected"]),
    ("meta not an object", {**PAIR, "meta": 5}, ["'meta' is a number, expected an object"]),
    ("not JSON", "{'prompt': 'Q'}", ["not valid JSON"]),
]


@pytest.mark.parametrize(("name", "bad", "phrases"), BAD_PAIRS, ids=[c[0] for c in BAD_PAIRS])
def test_a_bad_pair_names_the_line_and_the_field(tmp_path, name, bad, phrases):
    p = tmp_path / "pairs.jsonl"
    p.write_bytes(lines(GOOD, "", bad, GOOD))
    with pytest.raises(DatasetError) as info:
        read_pairs(p)
    e = info.value
    assert e.line == 3 and "pairs.jsonl, line 3" in str(e)
    for phrase in phrases:
        assert phrase in str(e)


@pytest.mark.parametrize("data", [b"", b"\n  \n"], ids=["empty", "blank lines"])
def test_an_empty_pairs_file_shows_a_pair(tmp_path, data):
    p = tmp_path / "pairs.jsonl"
    p.write_bytes(data)
    with pytest.raises(DatasetError, match="the file holds no rows") as info:
        read_pairs(p)
    assert info.value.line is None and '"chosen": "4"' in str(info.value)


def test_file_problems_are_the_sft_readers(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="is a folder"):
        read_pairs(tmp_path)
    p = tmp_path / "pairs.jsonl"
    p.write_bytes(GOOD.encode("utf-16"))
    with pytest.raises(DatasetError, match="UTF-16") as info:
        read_pairs(p)
    assert info.value.line == 1


def test_a_bom_and_blank_lines_are_fine(tmp_path):
    p = tmp_path / "excel.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + lines(GOOD, "", "   ", GOOD) + b"\r\n")
    assert read_pairs(p) == [PAIR, PAIR]


# -- KTO: unpaired rows ---------------------------------------------------------------

UP = {"prompt": "2+2?", "completion": "4", "label": True}
DOWN = {"prompt": "2+2?", "completion": "5", "label": False}


def test_unpaired_rows_read(tmp_path):
    p = tmp_path / "kto.jsonl"
    p.write_bytes(lines(UP, DOWN, {**DOWN, "meta": {"rater": "a"}}))
    assert read_unpaired(p) == [UP, DOWN, {**DOWN, "meta": {"rater": "a"}}]


BAD_UNPAIRED = [
    ("label a string", {**UP, "label": "true"}, ["'label' is a string (\"true\")",
                                                 "expected true or false"]),
    ("label a number", {**UP, "label": 1}, ["'label' is a number (1)"]),
    ("no label", {"prompt": "Q", "completion": "A"}, ["the row has no 'label'",
                                                       '"label": true']),
    ("completion a number", {**UP, "completion": 4},
     ["'completion' is a number, expected a string"]),
    ("empty completion", {**UP, "completion": ""}, ["'completion' is empty"]),
    ("a typo", {"prompt": "Q", "completion": "A", "lable": True},
     ["unknown key 'lable'", "did you mean 'label'?"]),
]


@pytest.mark.parametrize(("name", "bad", "phrases"), BAD_UNPAIRED,
                         ids=[c[0] for c in BAD_UNPAIRED])
def test_a_bad_unpaired_row_names_the_line_and_the_field(tmp_path, name, bad, phrases):
    p = tmp_path / "kto.jsonl"
    p.write_bytes(lines(UP, DOWN, bad))
    with pytest.raises(DatasetError) as info:
        read_unpaired(p)
    assert info.value.line == 3 and "kto.jsonl, line 3" in str(info.value)
    for phrase in phrases:
        assert phrase in str(info.value)


@pytest.mark.parametrize(("rows", "only"), [((UP, UP), "true"), ((DOWN,), "false")])
def test_kto_needs_both_labels(tmp_path, rows, only):
    p = tmp_path / "kto.jsonl"
    p.write_bytes(lines(*rows))
    with pytest.raises(DatasetError, match=f"every row is labelled {only}") as info:
        read_unpaired(p)
    assert info.value.line is None and "kto.jsonl" in str(info.value)


def test_pairs_become_one_desirable_and_one_undesirable_row():
    pair = {**PAIR, "system": "Be brief.", "meta": {"id": 7}}
    up, down = pairs_to_unpaired([pair])
    assert up == {"prompt": "2+2?", "completion": "4", "label": True, "system": "Be brief.",
                  "meta": {"id": 7}}
    assert down == {**up, "completion": "5", "label": False}
    up["meta"]["id"] = 8
    assert down["meta"] == pair["meta"] == {"id": 7}


def test_sft_rows_read_as_before(tmp_path):
    p = tmp_path / "sft.jsonl"
    p.write_bytes(lines({"prompt": "2+2?", "completion": "4"}))
    assert read_jsonl(p) == [{"messages": [{"role": "user", "content": "2+2?"},
                                           {"role": "assistant", "content": "4"}],
                              "meta": {"answer": "4"}}]
    p.write_bytes(lines(PAIR))
    with pytest.raises(DatasetError, match="line 1"):
        read_jsonl(p)
    p.write_bytes(b"")
    with pytest.raises(DatasetError, match='e.g. {"prompt": "2\\+2\\?", "completion": "4"}'):
        read_jsonl(p)
