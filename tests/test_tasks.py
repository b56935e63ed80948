"""Generated tasks: the right shape, reproducible from a seed, splits that never overlap."""

import json
import re

import pytest

from ftlab.data.formats import check_row
from ftlab.data.tasks import EXTRACTION_KEYS, TASKS, make_task
from ftlab.errors import ConfigError


def _prompts(rows):
    return {r["messages"][0]["content"] for r in rows}


@pytest.mark.parametrize("name", list(TASKS))
def test_splits_are_disjoint_and_sized(name):
    s = make_task(name, 500, seed=3)
    train, val, test = _prompts(s.train), _prompts(s.validation), _prompts(s.test)
    assert (len(s.train), len(s.validation), len(s.test)) == (300, 100, 100)
    assert len(train) == 300 and len(val) == 100 and len(test) == 100  # no duplicates inside
    assert not train & val and not train & test and not val & test


@pytest.mark.parametrize("name", list(TASKS))
def test_same_seed_same_rows_other_seed_other_rows(name):
    assert make_task(name, 50, seed=7) == make_task(name, 50, seed=7)
    assert make_task(name, 50, seed=7).test != make_task(name, 50, seed=8).test


@pytest.mark.parametrize("name", list(TASKS))
def test_rows_are_chats_with_an_answer(name):
    for i, row in enumerate(make_task(name, 10).train):
        check_row(row, f"row {i}")
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["meta"]["answer"] == row["messages"][-1]["content"]


@pytest.mark.parametrize("name", list(TASKS))
def test_largest_size_is_reachable(name):
    s = make_task(name, 5000, seed=1)
    assert len(_prompts(s.train + s.validation + s.test)) == 5000


def test_arithmetic_answers_are_right():
    for row in make_task("arithmetic", 200).train:
        q, n = row["messages"][0]["content"], row["meta"]["number"]
        nums = [int(w) for w in re.findall(r"\d+", q)]
        expected = {"add": nums[0] + nums[1], "sub": nums[0] - nums[1],
                    "mul": nums[0] * nums[1]}[row["meta"]["op"]]
        assert n == expected and row["meta"]["answer"] == f"The answer is {n}."


def test_extraction_answer_is_json_with_fixed_keys_found_in_the_sentence():
    for row in make_task("extraction", 100).train:
        obj = json.loads(row["messages"][-1]["content"])
        assert tuple(obj) == EXTRACTION_KEYS
        sentence = row["messages"][0]["content"].split("Sentence: ")[1]
        assert all(str(v) in sentence for v in obj.values())


def test_sentiment_is_one_word_and_balanced():
    labels = [r["meta"]["label"] for r in make_task("sentiment", 400).train]
    assert set(labels) == {"positive", "negative"}
    assert 0.4 < labels.count("positive") / len(labels) < 0.6


@pytest.mark.parametrize("bad", [{"name": "poetry", "n": 100}, {"name": "arithmetic", "n": 9},
                                 {"name": "arithmetic", "n": 5001},
                                 {"name": "arithmetic", "n": 100, "val_fraction": 0.9}])
def test_bad_requests_raise_config_error(bad):
    with pytest.raises(ConfigError):
        make_task(**bad)
