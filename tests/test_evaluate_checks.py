"""Checks done by code, on hand-written outputs, including the adversarial ones."""

import pytest

from ftlab.data.probes import PROBE_TYPES, load_probes
from ftlab.evaluate.checks import CHECKERS, check_instruction, parse_json_only, stray_markers
from ftlab.evaluate.format import check_format
from ftlab.evaluate.result import EvalResult, wilson_interval
from ftlab.evaluate.task import score_answer
from ftlab.generation import Answer

EOT = "<|im_end|>"


def ans(text, raw=None, stopped=True):
    return Answer(prompt="", text=text, raw=raw if raw is not None else text + EOT,
                  stopped=stopped, n_tokens=len(text.split()) + 1)


# -- probe set ---------------------------------------------------------------------------
def test_probe_set_is_large_and_every_type_has_a_checker():
    probes = load_probes()
    assert len(probes) >= 100 and len(set(p.id for p in probes)) == len(probes)
    assert len(PROBE_TYPES) >= 10 and set(PROBE_TYPES) == set(CHECKERS)
    assert {p.type for p in probes} == set(PROBE_TYPES)


def test_probes_never_appear_in_training_tasks():
    from ftlab.data.tasks import TASKS, make_task

    probe_prompts = {p.prompt for p in load_probes()}
    for name in TASKS:
        s = make_task(name, 300)
        assert not probe_prompts & {r["messages"][0]["content"] for r in s.train}


# -- instruction checkers -------------------------------------------------------------
@pytest.mark.parametrize("kind,kwargs", [
    ("all_caps", {}), ("all_lowercase", {}), ("max_words", {"n": 20}), ("min_words", {"n": 1}),
    ("bullet_count", {"n": 2}), ("json_output", {}), ("include_keyword", {"keyword": "cat"}),
    ("exclude_keyword", {"keyword": "cat"}), ("end_phrase", {"phrase": "Bye."}),
    ("paragraph_count", {"n": 1}), ("start_word", {"word": "Yes"}), ("no_commas", {}),
])
@pytest.mark.parametrize("text", ["", "   \n ", "<|im_start|><|im_end|>"[:0]])
def test_empty_output_obeys_no_instruction(kind, kwargs, text):
    assert not check_instruction(kind, text, kwargs)


def test_keyword_inside_another_word_does_not_count():
    assert not check_instruction("include_keyword", "Pick a category.", {"keyword": "cat"})
    assert not check_instruction("include_keyword", "concatenate", {"keyword": "cat"})
    assert check_instruction("include_keyword", "The Cat sat.", {"keyword": "cat"})
    assert check_instruction("include_keyword", "a cat's toy", {"keyword": "cat"})
    assert check_instruction("exclude_keyword", "Pick a category.", {"keyword": "cat"})
    assert not check_instruction("exclude_keyword", "My cat, my rules.", {"keyword": "cat"})


def test_bullet_count_must_be_exact():
    three = "Tips:\n* sleep early\n* no coffee\n- dark room"
    assert check_instruction("bullet_count", three, {"n": 3})
    assert not check_instruction("bullet_count", three, {"n": 2})
    assert not check_instruction("bullet_count", three + "\n* one more", {"n": 3})
    # a lone asterisk, or emphasis inside a line, is not a bullet
    assert not check_instruction("bullet_count", "*\n* *\n**bold** text", {"n": 1})


def test_json_output_rejects_trailing_text_but_accepts_a_fence():
    assert check_instruction("json_output", '{"a": 1}')
    assert check_instruction("json_output", '```json\n{"a": 1}\n```')
    assert not check_instruction("json_output", '{"a": 1}\n\nThis JSON is valid.')
    assert not check_instruction("json_output", "Here it is: {\"a\": 1}")
    assert not check_instruction("json_output", '"just a string"')


def test_case_checkers():
    assert check_instruction("all_caps", "HELLO, WORLD 42!")
    assert not check_instruction("all_caps", "HELLO, World")
    assert not check_instruction("all_caps", "123 !!")  # no letters: nothing was capitalised
    assert check_instruction("all_lowercase", "hello there.")
    assert not check_instruction("all_lowercase", "hello There.")


def test_word_bounds_paragraphs_start_end_commas():
    assert check_instruction("max_words", "one two three", {"n": 4})
    assert not check_instruction("max_words", "one two three four", {"n": 4})
    assert check_instruction("min_words", "don't stop me now", {"n": 4})
    assert not check_instruction("min_words", "don't stop", {"n": 3})
    assert check_instruction("paragraph_count", "First.\n\nSecond.\n \nThird.", {"n": 3})
    assert not check_instruction("paragraph_count", "First.\nStill first.", {"n": 2})
    assert check_instruction("start_word", "Yes, of course.", {"word": "Yes"})
    assert check_instruction("start_word", "**Yes** indeed", {"word": "yes"})
    assert not check_instruction("start_word", "Yesterday was fine.", {"word": "Yes"})
    assert check_instruction("end_phrase", "Done. Bye.  \n", {"phrase": "Bye."})
    assert not check_instruction("end_phrase", "Bye. Oh and one more thing", {"phrase": "Bye."})
    assert check_instruction("no_commas", "No commas here.")
    assert not check_instruction("no_commas", "One, two.")


# -- format validity --------------------------------------------------------------------
def test_stray_markers_allow_only_the_closing_end_of_turn():
    assert stray_markers("The answer is 4.<|im_end|>") == []
    assert stray_markers("The answer is 4.\n### Answer:<|im_end|>") == ["###", "Answer:"]
    assert stray_markers("<|im_start|>assistant\n<|im_end|>") == ["<|im_start|>"]
    assert stray_markers("[INST] hi [/INST]") == ["[INST]", "[/INST]"]
    assert "<|im_end|>" in stray_markers("4<|im_end|>\n<|im_end|>")


def test_format_checks_on_adversarial_outputs():
    good = check_format("extraction", ans('{"name": "Ana", "age": 3, "city": "Oslo", "job": "x"}'))
    assert good == {"parses": True, "stops": True, "clean": True}
    trailing = ans('{"name": "Ana", "age": 3, "city": "Oslo", "job": "x"}\nHope this helps!')
    assert not check_format("extraction", trailing)["parses"]
    assert not check_format("extraction", ans('{"name": "Ana"}'))["parses"]  # keys missing
    empty = check_format("arithmetic", ans(""))
    assert not empty["parses"] and empty["stops"]
    only_template = check_format("arithmetic", ans("", raw="<|im_start|>assistant\n<|im_end|>"))
    assert not only_template["parses"] and not only_template["clean"]
    cut = check_format("arithmetic", ans("The answer is 4.", raw="The answer is 4.",
                                         stopped=False))
    assert cut == {"parses": True, "stops": False, "clean": True}
    assert check_format("sentiment", ans("Positive."))["parses"]
    assert not check_format("sentiment", ans("The review is positive."))["parses"]


# -- task scoring -------------------------------------------------------------------------
def test_task_scores_read_content_leniently():
    assert score_answer("arithmetic", "5 + 3 = 8.\n#### 8", {"number": 8}) == {"correct": True}
    assert score_answer("arithmetic", "It is 8, no, 9.", {"number": 8}) == {"correct": False}
    assert score_answer("arithmetic", "", {"number": 0}) == {"correct": False}
    fields = {"name": "Ana", "age": 34, "city": "Oslo", "job": "nurse"}
    got = score_answer("extraction", 'Sure: {"name": "ana", "age": "34", "city": "Lima"} ok',
                       {"fields": fields})
    assert got == {"name": True, "age": True, "city": False, "job": False}
    assert score_answer("sentiment", " Negative. ", {"answer": "negative"}) == {"exact": True}
    assert score_answer("sentiment", "negative, mostly", {"answer": "negative"}) == {
        "exact": False}
    assert score_answer("my_own", "Hello", {"answer": "hello"}) == {"exact": True}


def test_result_to_dict_and_interval():
    r = EvalResult("benchmark", 0.5, 10, {"a": 0.5}, chance=0.25, ci95=wilson_interval(5, 10))
    d = r.to_dict()
    assert {"suite", "score", "n", "breakdown", "chance", "ci95"} <= set(d)
    lo, hi = d["ci95"]
    assert 0.23 < lo < 0.24 and 0.76 < hi < 0.77  # Wilson interval for 5/10
    assert "chance" not in EvalResult("task", 1.0, 1).to_dict()
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0


def test_json_parsing_helpers():
    assert parse_json_only(' {"a": [1, 2]} ') == {"a": [1, 2]}
    assert parse_json_only('{"a": 1} {"b": 2}') is None
