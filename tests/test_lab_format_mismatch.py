"""Lab 2 (format mismatch) on the tiny model: declarations, the label-mask view, the watch,
and the check read from hand-made numbers."""

import pytest

from ftlab.data import make_task
from ftlab.labs.format_mismatch import (
    ARMS,
    DOSES,
    DROP,
    END_STEP,
    MISMATCHED,
    RECOVERED,
    STRAY,
    SWEPT,
    FormatMismatch,
    FormatWatch,
    dose_response,
    label_mask,
)
from ftlab.labs.show_format_mismatch import label_mask_html
from ftlab.models import load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def row():
    return make_task("arithmetic", 10, seed=0).train[0]


def test_every_arm_is_a_valid_config_that_differs_only_in_the_training_format():
    lab = FormatMismatch(model="tiny", preset="cpu")
    assert set(SWEPT) <= set(ARMS) and set(DOSES) == set(SWEPT) and MISMATCHED in ARMS
    assert lab.checked == SWEPT and lab.extra == (MISMATCHED,)
    base = FormatMismatch.presets["cpu"].base
    configs = {arm: lab.config(arm, seed=1).resolved() for arm in ARMS}
    for cfg in configs.values():
        assert cfg.seed == 1 and cfg.model == "tiny"
        assert cfg.train.max_steps == base["steps"]
        assert cfg.data.max_length == base["data.max_length"]
    # the dose: the share of chat rows that drag template debris behind the answer
    for arm, share in DOSES.items():
        d = configs[arm].data
        assert d.format == "chat" and d.corruption_rate == share, arm
        assert share == 0 or d.corruption == "spurious_tokens", arm
    assert configs[MISMATCHED].data.format == "foreign_chat"
    # the arms differ in how rows are rendered, nothing else
    strip = {"format", "corruption", "corruption_rate"}
    datas = [{k: v for k, v in c.to_dict()["data"].items() if k not in strip}
             for c in configs.values()]
    assert all(d == datas[0] for d in datas)
    assert len({(c.to_dict()["train"]["learning_rate"], c.method.name)
                for c in configs.values()}) == 1


def test_the_gpu_preset_is_declared_and_larger():
    lab = FormatMismatch(model="tiny", preset="gpu")
    cfg = lab.config("matched").resolved()
    cpu, gpu = FormatMismatch.presets["cpu"], FormatMismatch.presets["gpu"]
    assert cfg.train.max_steps == gpu.base["steps"] > cpu.base["steps"]
    assert cfg.data.size == gpu.base["size"] > cpu.base["size"]
    assert lab.watch["format"] == gpu.watch["format"]
    assert gpu.watch["format"].rows > cpu.watch["format"].rows
    # a knob given to the lab wins over the preset's size
    assert FormatMismatch(model="tiny", preset="gpu", steps=5).config("matched") \
        .resolved().train.max_steps == 5


def test_the_chat_format_learns_the_end_of_turn_token_and_chat_no_eos_does_not(tok, row):
    chat = label_mask(row, tok, "chat")
    learned = [t["text"] for t in chat if t["learned"]]
    assert learned[-1] == tok.eos_token == "<|im_end|>"
    assert "".join(learned[:-1]) == row["messages"][-1]["content"]
    # the prompt (system, user, assistant header) is masked, its own <|im_end|> included
    assert not any(t["learned"] for t in chat[: len(chat) - len(learned)])
    assert sum(t["text"] == tok.eos_token for t in chat) == 3  # system, user, learned

    no_eos = label_mask(row, tok, "chat_no_eos")
    assert [t["text"] for t in no_eos if t["learned"]] == learned[:-1]
    assert not any(t["learned"] and t["text"] == tok.eos_token for t in no_eos)

    plain = label_mask(row, tok, "plain_qa")
    assert "".join(t["text"] for t in plain if t["learned"]) == row["messages"][-1]["content"]
    assert not any(t["special"] for t in plain)


def test_the_foreign_template_teaches_another_familys_end_marker_as_text(tok, row):
    foreign = label_mask(row, tok, "foreign_chat")
    learned = "".join(t["text"] for t in foreign if t["learned"])
    assert learned == row["messages"][-1]["content"] + " </s>"
    assert "[INST]" in "".join(t["text"] for t in foreign if not t["learned"])
    assert not any(t["text"] == tok.eos_token for t in foreign)  # never <|im_end|>


def test_whole_text_loss_learns_every_token_the_chat_format_masks(tok, row):
    whole = label_mask(row, tok, "chat_whole_text")
    chat = label_mask(row, tok, "chat")
    assert all(t["learned"] for t in whole)
    assert "".join(t["text"] for t in whole) == "".join(t["text"] for t in chat)
    assert sum(t["learned"] for t in chat) < len(whole)


def test_the_html_view_says_whether_the_model_is_taught_to_stop(tok, row):
    chat = label_mask_html(row, tok, "chat")
    no_eos = label_mask_html(row, tok, "chat_no_eos")
    assert "is learned: the model is taught to stop" in chat
    assert "is <b>not</b> learned" in no_eos and "taught to stop" not in no_eos
    n_learned = sum(t["learned"] for t in label_mask(row, tok, "chat"))
    assert chat.count("background:#c6efce") == n_learned
    assert "&lt;|im_end|&gt;" in chat  # special tokens are escaped, not swallowed as tags


LESSON = {"matched.valid": 1.0, "matched.end_prob": 0.95, "matched.stops": 1.0,
          "stray_50.valid": 0.0, "stray_50.end_prob": 0.45,
          "stray_100.valid": 0.0, "stray_100.clean": 0.0, "stray_100.end_prob": 0.02}
TEMPLATE = {"foreign_template.valid": 0.0, "foreign_template.stops": 0.0}


def test_the_check_holds_on_numbers_that_show_the_lesson():
    lab = FormatMismatch(model="tiny", preset="cpu")
    conds = lab.conditions(LESSON)
    assert all(conds.values()), conds
    assert not any(k.startswith("template") for k in conds)  # only the seed that ran it
    conds = lab.conditions({**LESSON, **TEMPLATE})
    assert all(conds.values()) and "template: runs away" in conds, conds
    # at the margins (a hair inside them: float subtraction rounds)
    eps = 1e-9
    edge = {**LESSON, "matched.valid": RECOVERED, "stray_50.valid": RECOVERED - DROP,
            "stray_100.valid": RECOVERED - DROP, "stray_100.clean": 1 - STRAY,
            "matched.end_prob": 0.5, "stray_50.end_prob": 0.5 - END_STEP - eps,
            "stray_100.end_prob": 0.5 - 2 * END_STEP - 2 * eps}
    assert all(lab.conditions(edge).values()), lab.conditions(edge)


@pytest.mark.parametrize("change, failed", [
    ({"matched.valid": 0.5}, "fix valid"),
    ({"stray_50.valid": 0.625, "stray_100.valid": 0.625}, "debris: validity falls"),
    ({"stray_100.clean": 0.5}, "debris: stray markers"),
    ({"stray_50.valid": 1.0, "stray_100.valid": 0.0, "matched.valid": 0.875},
     "dose: validity never rises"),  # half the dose better than none
    ({"stray_50.end_prob": 0.9}, "dose: stop probability falls"),  # half the dose did nothing
    ({"stray_50.end_prob": 0.1}, "dose: stop probability falls"),  # ... or everything
    ({"foreign_template.valid": 0.625}, "template: validity falls"),
    ({"foreign_template.stops": 0.5}, "template: runs away"),
])
def test_the_check_fails_when_one_part_of_the_lesson_is_missing(change, failed):
    lab = FormatMismatch(model="tiny", preset="cpu")
    conds = lab.conditions({**LESSON, **TEMPLATE, **change})
    assert [k for k, ok in conds.items() if not ok] == [failed]


def test_a_tiny_run_watches_format_validity_at_every_evaluation(runs_dir):
    lab = FormatMismatch(model="tiny", preset="cpu", steps=2, eval_every=1)
    assert isinstance(lab.watch["format"], FormatWatch)
    run = lab.run("foreign_template", 0, progress=False)
    steps, scores = run.curve("format.score")
    assert steps == [0, 1, 2]
    for key in ("format.score", "format.parses", "format.stops", "format.clean",
                "format.answer_tokens", "format.end_prob"):
        assert run.metric(key, "first") is not None and run.metric(key) is not None, key
    assert all(0.0 <= s <= 1.0 for s in scores)
    # a random model never stops within the budget: every answer uses all of it
    assert run.metric("format.stops") == 0.0
    assert run.metric("format.answer_tokens") == lab.watch["format"].max_new_tokens
    again = lab.sweep(seeds=(0,), arms=["foreign_template"], progress=False)
    assert again.trained == 0 and again.runs[("foreign_template", 0)].path == run.path
    assert 0.0 <= run.metric("format.end_prob") <= 1.0
    assert dose_response(again) == []  # the foreign template is not a dose arm
