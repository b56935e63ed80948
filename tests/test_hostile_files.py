"""Hostile dataset files: one reader, and every problem is a DatasetError naming file and line.

A file saved from Excel in Latin-1, a folder given as the path, rows that break the chat
rule, a line of 50 MB: each gets one message that says where and what to do, the CLI prints
it as one line with exit code 2 and leaves no run folder behind.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftlab.cli import main
from ftlab.data import read_jsonl
from ftlab.data.jsonl import MAX_LINE_BYTES
from ftlab.errors import DatasetError

GOOD = json.dumps({"messages": [{"role": "user", "content": "2+2?"},
                                {"role": "assistant", "content": "4"}]})


def chat(*msgs: tuple[str, str]) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in msgs]})


# (name, file bytes, the line named, a phrase of the message)
BAD_FILES = [
    ("latin-1 from Excel", (GOOD + "\n" + '{"prompt": "Caf\xe9?", "completion": "oui"}\n')
     .encode("latin-1"), 2, "not UTF-8 text (byte 0xe9"),
    ("windows-1252 quotes", (GOOD + "\n" + '{"prompt": "\x93hi\x94", "completion": "x"}\n')
     .encode("latin-1"), 2, "Re-save the file as UTF-8"),
    ("utf-16 from Notepad", GOOD.encode("utf-16"), 1, "the file is saved as UTF-16"),
    ("system and assistant only", (GOOD + "\n" + chat(("system", "Be brief."),
                                                      ("assistant", "4")) + "\n").encode(),
     2, "the row has no user message"),
    ("empty user content", (GOOD + "\n" + chat(("user", ""), ("assistant", "4")) + "\n")
     .encode(), 2, "the user message is empty"),
    ("blank assistant content", (chat(("user", "Q"), ("assistant", "   ")) + "\n").encode(),
     1, "the assistant message is empty"),
    ("empty completion", (GOOD + "\n" * 3 + '{"prompt": "Q", "completion": ""}\n').encode(),
     4, "the assistant message is empty"),
    ("not JSON", (GOOD + "\n{'messages': []}\n").encode(), 2, "not valid JSON"),
    ("a JSON array", b"[1, 2]\n", 1, "an array where a JSON object was expected"),
    ("null", b"null\n", 1, "null where a JSON object was expected"),
    ("nested 100 000 deep", b"[" * 100_000 + b"\n", 1, "not JSON that ftlab can read"),
    ("a 5000-digit number", b"1" * 5000 + b"\n", 1, "not JSON that ftlab can read"),
    ("a lone surrogate", b'{"prompt": "\\ud800", "completion": "y"}\n', 1,
     "unpaired surrogate"),
    ("meta not an object", b'{"prompt": "a", "completion": "y", "meta": 5}\n', 1,
     "'meta' must be an object"),
    ("prompt not a string", b'{"prompt": 3, "completion": "y"}\n', 1, "must be strings"),
    ("NUL bytes", b"\x00\x00\x00\n", 1, "not valid JSON"),
    ("a role that is not one", (chat(("bot", "x"), ("assistant", "y")) + "\n").encode(), 1,
     "a message needs a 'role'"),
]


@pytest.mark.parametrize(("name", "data", "line", "phrase"), BAD_FILES,
                         ids=[c[0] for c in BAD_FILES])
def test_bad_file_names_file_line_and_fix(tmp_path, name, data, line, phrase):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(data)
    with pytest.raises(DatasetError) as info:
        read_jsonl(p)
    e = info.value
    assert e.line == line and f"rows.jsonl, line {line}" in str(e)
    assert phrase in str(e)
    assert p.read_bytes() == data  # the learner's file is untouched


def written(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "phrase"), [
    (lambda d: d, "is a folder, not a file"),
    (lambda d: d / "missing.jsonl", "no such file"),
    (lambda d: written(d / "empty.jsonl", b""), "the file holds no rows"),
    (lambda d: "", "data.path: is empty"),
    (lambda d: written(d / "blank.jsonl", b"\n \n\t\n"), "the file holds no rows"),
])
def test_bad_paths_say_what_the_path_is(tmp_path, make, phrase):
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=phrase) as info:
        read_jsonl(path)
    assert info.value.line is None and str(path or "data.path") in str(info.value)


def test_an_excel_utf8_file_with_a_bom_reads():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "excel.jsonl"
        p.write_bytes(("\ufeff" + GOOD + "\n").encode("utf-8"))
        [row] = read_jsonl(p)
    assert row["messages"][0]["content"] == "2+2?" and row["meta"]["answer"] == "4"


def test_an_over_long_line_is_refused_without_reading_it_whole(tmp_path):
    p = tmp_path / "dump.jsonl"
    with p.open("wb") as f:  # a 50 MB line, as in the report
        f.write((GOOD + "\n").encode())
        f.write(b'{"prompt": "' + b"x" * 50_000_000 + b'", "completion": "y"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="line 2: the line is longer than") as info:
            read_jsonl(p)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert info.value.line == 2
    assert peak_mb < 2 * MAX_LINE_BYTES / 1e6 + 1, f"reading held {peak_mb:.0f} MB at once"
    assert MAX_LINE_BYTES < 50_000_000


@pytest.mark.parametrize(("data", "phrase"), [
    ((GOOD + "\n" + '{"prompt": "Caf\xe9?", "completion": "oui"}\n').encode("latin-1"),
     "line 2: not UTF-8 text"),
    ((chat(("system", "S"), ("assistant", "A")) + "\n").encode(), "no user message"),
])
def test_the_cli_prints_the_dataset_error_as_one_line_and_writes_no_run(
        tmp_path, capsys, data, phrase):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(data)
    runs = tmp_path / "runs"
    rc = main(["train", "--model", "tiny", "--data", str(p), "--json", "--runs-dir", str(runs)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert phrase in json.loads(out)["error"] and json.loads(out)["type"] == "DatasetError"
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(runs.iterdir())  # refused before a run folder was started


# -- property: arbitrary bytes load as rows or raise DatasetError with a line number -----

_rowish = st.one_of(
    st.just(GOOD),
    st.builds(lambda p, c: json.dumps({"prompt": p, "completion": c}), st.text(max_size=8),
              st.text(max_size=8)),
    st.builds(lambda roles, texts: json.dumps({"messages": [
        {"role": r, "content": t} for r, t in zip(roles, texts)]}),
        st.lists(st.sampled_from(["system", "user", "assistant", "bot", ""]), max_size=4),
        st.lists(st.text(max_size=6), min_size=4, max_size=4)),
    st.text(max_size=30),
    st.just("{"), st.just("[]"), st.just('{"messages": null}'), st.just("  "),
)
_files = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(_rowish.map(str.encode), st.binary(max_size=20),
                       _rowish.map(lambda t: t.encode("utf-16"))), max_size=6)
    .map(lambda lines: b"\n".join(lines)),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=_files)
@example(data=b"\xef\xbb\xbf" + GOOD.encode())
@example(data=b"\xff\xfe" + GOOD.encode("utf-16-le"))
@example(data=b"\r\n".join([GOOD.encode()] * 3))
def test_any_bytes_load_as_rows_or_raise_a_dataset_error_with_a_line(tmp_path, data):
    p = tmp_path / "any.jsonl"
    p.write_bytes(data)
    try:
        rows = read_jsonl(p)
    except DatasetError as e:
        if e.line is None:  # only the file as a whole: no line holds anything
            assert "holds no rows" in str(e)
            lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
            assert all(not line.decode("utf-8").strip() for line in lines)
        else:
            assert 1 <= e.line <= data.count(b"\n") + 1
            assert f"line {e.line}" in str(e)
        return
    assert rows
    for row in rows:
        msgs = row["messages"]
        assert msgs[-1]["role"] == "assistant" and any(m["role"] == "user" for m in msgs)
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in msgs)
        assert isinstance(row["meta"], dict) and "answer" in row["meta"]
