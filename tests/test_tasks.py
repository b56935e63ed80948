"""Generated tasks: the right shape, reproducible from a seed, splits that never overlap."""

import json
import re

import pytest

from ftlab.data.formats import check_row
from ftlab.data.tasks import EXTRACTION_KEYS, HELD_OUT, TASKS, held_out, make_task
from ftlab.errors import ConfigError
from ftlab.evaluate.suite import SUITE_PRESETS, suite_rows


def _prompts(rows):
    return {r["messages"][0]["content"] for r in rows}


@pytest.mark.parametrize("name", list(TASKS))
def test_splits_are_disjoint_and_sized(name):
    s = make_task(name, 500, seed=3, n_val=50)
    train, val, test = _prompts(s.train), _prompts(s.validation), _prompts(s.test)
    n_test = HELD_OUT["test"]
    assert (len(s.train), len(s.validation), len(s.test)) == (500, 50, n_test)
    assert len(train) == 500 and len(val) == 50 and len(test) == n_test  # no duplicates
    assert not train & val and not train & test and not val & test


def _largest(name: str) -> int:
    try:
        make_task(name, 5000, seed=0)
        return 5000
    except ConfigError as e:  # sentiment has fewer distinct prompts than that
        return int(e.expected.split()[2])


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_held_out_rows_never_appear_in_training_at_any_size(name, seed):
    pool = held_out(name, seed)
    held = _prompts(pool.validation + pool.test)
    sizes = sorted({10, 16, 20, 30, 40, 50, 60, 80, 120, 500, 2000, _largest(name)})
    for size in sizes:
        s = make_task(name, size, seed=seed)
        assert len(s.train) == size
        assert not _prompts(s.train) & held, f"size {size}: a held-out row was trained on"
        assert s.validation == pool.validation and s.test == pool.test  # same at every size
    # what every suite scores for this task is inside the pool
    for preset in SUITE_PRESETS.values():
        for split in ("test", "validation"):
            assert _prompts(suite_rows(preset, name, seed, split)) <= held


def test_the_old_leak_is_gone_size_40_seed_0():
    # Before: at data.size 40 all 16 of the cpu suite's test rows were training rows.
    rows = suite_rows(SUITE_PRESETS["cpu"], "arithmetic", 0, "test")
    assert len(rows) == 16
    assert not _prompts(make_task("arithmetic", 40, seed=0).train) & _prompts(rows)


def test_a_larger_size_adds_rows_to_a_smaller_ones():
    assert make_task("arithmetic", 100).train[:30] == make_task("arithmetic", 30).train


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
def test_largest_size_is_reachable_or_says_how_many_there_are(name):
    n = _largest(name)
    assert n >= 4000
    s = make_task(name, n, seed=1)
    assert len(_prompts(s.train + s.validation + s.test)) == n + sum(HELD_OUT.values())


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
                                 {"name": "arithmetic", "n": 100, "n_val": 0},
                                 {"name": "arithmetic", "n": 100, "n_val": 201}])
def test_bad_requests_raise_config_error(bad):
    with pytest.raises(ConfigError):
        make_task(**bad)


def test_general_rows_mix_into_training_only():
    from ftlab.data import make_task
    from ftlab.data.mix import general_rows, with_general

    splits = make_task("sentiment", 40, seed=3)
    mixed = with_general(splits, 0.25, seed=3)
    general = {r["messages"][-1]["content"] for r in general_rows()}
    n_general = sum(r["messages"][-1]["content"] in general for r in mixed.train)
    assert len(mixed.train) == len(splits.train) and n_general == 10
    assert mixed.validation == splits.validation and mixed.test == splits.test
    assert with_general(splits, 0.0, seed=3) is splits


@pytest.mark.parametrize("share", [-0.1, 1.0, "half", True])
def test_mix_share_out_of_range_names_the_field(share):
    from ftlab.data import make_task
    from ftlab.data.mix import with_general
    from ftlab.errors import ConfigError

    with pytest.raises(ConfigError, match="data.mix_share"):
        with_general(make_task("sentiment", 20, seed=0), share, seed=0)


@pytest.mark.parametrize("name", list(TASKS))
def test_a_task_is_one_declaration_whose_own_answers_parse_and_score(name):
    from ftlab.evaluate.task import MAX_NEW_TOKENS, PARSERS, score_answer

    task = TASKS[name]
    assert task.name == name and task.max_new_tokens == MAX_NEW_TOKENS[name] > 0
    assert PARSERS[name] is task.parse
    for row in make_task(name, 20, seed=1).train:
        answer = row["messages"][-1]["content"]
        assert task.parse(answer), answer  # the trained answer has the task's strict shape
        assert all(score_answer(name, answer, row["meta"]).values()), answer
        assert not all(task.score("I do not know.", row["meta"]).values())


def test_rows_of_your_own_are_scored_by_exact_match():
    from ftlab.data.tasks import OWN, task_for

    assert task_for("own") is task_for("nosuch") is OWN
    assert OWN.score(" Hello. ", {"answer": "hello"}) == {"exact": True}
    with pytest.raises(ConfigError, match="data.task"):
        OWN(__import__("random").Random(0))
