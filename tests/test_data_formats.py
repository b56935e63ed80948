"""Chats become tokens with the prompt masked and the end-of-turn token learned."""

import json

import pytest

from ftlab.data import IGNORE_INDEX, corrupt_formats, encode, make_task, read_jsonl
from ftlab.errors import DatasetError
from ftlab.models import load_tokenizer

ROW = {"messages": [{"role": "user", "content": "What is 2 + 3?"},
                    {"role": "assistant", "content": "The answer is 5."}]}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def learned_text(tok, enc):
    return tok.decode([t for t, lab in zip(enc["input_ids"], enc["labels"])
                       if lab != IGNORE_INDEX])


def test_chat_format_masks_prompt_and_learns_end_of_turn(tok):
    enc = encode(ROW, tok, "chat")
    assert learned_text(tok, enc) == "The answer is 5.<|im_end|>"
    prompt = tok.decode(enc["input_ids"][: enc["labels"].index(next(
        lab for lab in enc["labels"] if lab != IGNORE_INDEX))])
    assert prompt.endswith("<|im_start|>assistant\n") and "What is 2 + 3?" in prompt


def test_chat_no_eos_never_learns_to_stop(tok):
    enc = encode(ROW, tok, "chat_no_eos")
    assert learned_text(tok, enc) == "The answer is 5."
    assert tok.eos_token_id not in enc["input_ids"][-1:]


def test_wrong_templates_carry_no_end_of_turn(tok):
    plain = encode(ROW, tok, "plain_qa")
    assert "<|im_start|>" not in tok.decode(plain["input_ids"])
    assert "### Answer:" in tok.decode(plain["input_ids"])
    assert "[INST]" in tok.decode(encode(ROW, tok, "foreign_chat")["input_ids"])
    assert learned_text(tok, encode(ROW, tok, "spurious_tokens")).endswith(
        "### Answer:<|im_end|>")


def test_truncation_keeps_labels_aligned(tok):
    enc = encode(ROW, tok, "chat", max_length=20)
    assert len(enc["input_ids"]) == len(enc["labels"]) == 20


def test_corruption_rate_sets_the_share_of_corrupted_rows():
    fmts = corrupt_formats(100, 0.3, "plain_qa", seed=1)
    assert fmts.count("plain_qa") == 30 and fmts.count("chat") == 70
    assert corrupt_formats(100, 0.3, "plain_qa", seed=1) == fmts
    assert set(corrupt_formats(10, 0.0, "plain_qa")) == {"chat"}


def test_generated_splits_are_disjoint_and_deterministic():
    s = make_task("arithmetic", 50, seed=3)
    key = lambda r: r["messages"][0]["content"]  # noqa: E731
    sets = [set(map(key, part)) for part in (s.train, s.validation, s.test)]
    assert len(sets[0]) == 50 and not (sets[0] & sets[1] or sets[0] & sets[2])
    assert make_task("arithmetic", 50, seed=3) == s


def write(tmp_path, lines):
    p = tmp_path / "data.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_jsonl_accepts_chats_and_prompt_completion_pairs(tmp_path):
    p = write(tmp_path, [json.dumps(ROW), json.dumps({"prompt": "Hi", "completion": "Hello!"})])
    rows = read_jsonl(p)
    assert rows[1]["messages"][-1] == {"role": "assistant", "content": "Hello!"}


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        ('{"messages": [', "line 2: not valid JSON"),
        ('{"text": "no chat here"}', "line 2: the row has no 'messages' list"),
        ('{"messages": [{"role": "user", "content": "only a question"}]}',
         "line 2: the last message must be the assistant's answer"),
        ('{"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}',
         "line 2, message 0: a message needs a 'role'"),
        ('{"prompt": 3, "completion": "x"}', "must be strings"),
    ],
)
def test_malformed_rows_name_the_line_and_the_fix(tmp_path, line, phrase):
    p = write(tmp_path, [json.dumps(ROW), line])
    with pytest.raises(DatasetError, match=phrase.replace("(", r"\(").replace("'", "'")):
        read_jsonl(p)


def test_missing_dataset_file_says_so(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl")
