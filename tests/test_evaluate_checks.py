"""Checks done by code, on hand-written outputs, including the adversarial ones."""

import pytest

from ftlab.data.probes import PROBE_TYPES, TOPICS, Probe, load_probes
from ftlab.data.tasks import CITIES, EXTRACTION_KEYS, JOBS, NAMES, SENTIMENT_LABELS, make_task
from ftlab.evaluate.checks import (
    CHECKERS,
    check_content,
    check_instruction,
    has_substance,
    on_topic,
    parse_json_only,
    stray_markers,
    substance_needed,
)
from ftlab.evaluate.format import check_format
from ftlab.evaluate.probes import score_probe, score_probes, training_form, training_form_share
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
@pytest.mark.parametrize("text", ["", "   \n "])
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


# -- probes need content: no vacuous passes -------------------------------------------------
PROBES = {p.id: p for p in load_probes()}
EXTRACTION_JSON = '{"name": "Hana", "age": 41, "city": "Lisbon", "job": "baker"}'
# Answers that ignore the request. A collapsed model gives exactly these.
DEGENERATE = {
    "empty": "",
    "one word": "Ocean.",
    "one word, lower case": "waves",
    "two words on topic": "ocean waves",
    "training label": "positive",
    "training label, upper case": "NEGATIVE",
    "training template": "The answer is 42.",
    "only template tokens": "<|im_start|>assistant\n<|im_end|>",
    "only stray markers": "### Answer:",
    "extraction JSON": EXTRACTION_JSON,
    "one word repeated": "ocean ocean ocean ocean ocean ocean",
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_answer_fails_every_probe(name):
    text = DEGENERATE[name]
    for probe in PROBES.values():
        checks = score_probe(probe, text)
        assert not all(checks.values()), (probe.id, checks)


def test_degenerate_answers_would_pass_on_format_alone():
    # what the pass rate used to count: a label is lower case, comma-free, short, and
    # avoids every excluded word; the template is short and comma-free
    for text, kinds in [("positive", {"all_lowercase", "no_commas", "max_words",
                                      "exclude_keyword"}),
                        ("The answer is 42.", {"no_commas", "max_words", "exclude_keyword"}),
                        (EXTRACTION_JSON, {"json_output", "max_words", "exclude_keyword"})]:
        format_ok = {p.type for p in PROBES.values() if score_probe(p, text)["format"]}
        assert kinds <= format_ok, (text, format_ok)


# Written by hand for the ocean topic (probe kwargs: fewer than 15 words, at least 35,
# 2 bullets, 2 paragraphs, include "waves", avoid "water", start with "Today").
GOOD_OCEAN = {
    "all_caps": "THE OCEAN IS A VAST BODY OF SALT WATER THAT COVERS MOST OF THE EARTH.",
    "all_lowercase": "the ocean is a vast body of salt water that covers most of the earth.",
    "max_words": "The ocean is vast, deep and full of life.",
    "min_words": "The ocean is a vast body of salt water that covers most of our planet. It "
                 "holds whales, sharks, dolphins and coral reefs, shapes the weather, feeds "
                 "millions of people and still keeps many of its deepest secrets from us.",
    "bullet_count": "* The ocean covers most of the Earth.\n* It is home to whales and reefs.",
    "json_output": '{"topic": "ocean", "description": "A vast body of salt water full of life."}',
    "include_keyword": "The ocean rolls with waves that break on every shore.",
    "exclude_keyword": "The ocean is vast and deep, home to whales, sharks and coral reefs.",
    "end_phrase": "The ocean is vast and deep. Is there anything else I can help with?",
    "paragraph_count": "The ocean is vast.\n\nIt is home to whales and fish.",
    "start_word": "Today the ocean is calm and blue under the sun.",
    "no_commas": "The ocean is vast and deep and full of life.",
}


@pytest.mark.parametrize("kind", PROBE_TYPES)
def test_a_real_answer_passes_its_probe(kind):
    checks = score_probe(PROBES[f"{kind}/0"], GOOD_OCEAN[kind])
    assert checks == {"format": True, "on_topic": True, "substance": True}


def test_off_topic_answer_fails_even_in_the_right_format():
    # a fine lower-case sentence, about the wrong topic
    text = "the weather in the mountains was cold and clear all week long."
    checks = score_probe(PROBES["all_lowercase/0"], text)
    assert checks == {"format": True, "on_topic": False, "substance": True}
    assert all(score_probe(PROBES["all_lowercase/7"], text).values())  # rain: on topic


def test_content_checks():
    ocean = TOPICS[0].words
    assert on_topic("WAVES CRASH.", ocean) and on_topic("The seas are calm", ocean)
    assert on_topic("a whale's song", ocean) and on_topic("sea-salt air", ocean)
    assert not on_topic("The answer is 42.", ocean) and not on_topic("", ocean)
    assert on_topic("anything at all", ())  # a probe without a topic asks for none
    assert has_substance("The ocean is very deep.") and not has_substance("The ocean is deep.")
    assert not has_substance("deep deep deep deep deep deep")
    assert not has_substance("<|im_start|>assistant <|im_end|> ### Answer: [INST]")
    assert substance_needed("min_words", {"n": 40}) == 5
    assert substance_needed("max_words", {"n": 20}) == 5
    assert substance_needed("max_words", {"n": 3}) == 2  # never more than the cap allows
    assert check_content("max_words", "Blue ocean.", {"n": 3}, ocean) == {
        "on_topic": True, "substance": True}  # two words is all "fewer than 3" allows
    assert check_content("max_words", "positive", {"n": 3}, ocean) == {
        "on_topic": False, "substance": False}


def test_training_answers_never_look_on_topic():
    # the words ftlab's training answers are made of: labels, the arithmetic template,
    # the extraction keys and values; none of them may count as addressing a probe topic
    vocab = [*SENTIMENT_LABELS, "The answer is", *EXTRACTION_KEYS, *NAMES, *CITIES, *JOBS]
    for topic in TOPICS:
        assert on_topic(topic.include, topic.words) and on_topic(topic.exclude, topic.words)
        assert not [w for w in vocab if on_topic(w, topic.words)], topic.prompt


def test_every_probe_has_a_topic():
    assert all(len(p.topic_words) >= 10 for p in PROBES.values())


def test_training_form_reuses_the_strict_task_shapes():
    assert training_form("positive") == training_form("Negative.") == "sentiment"
    assert training_form("The answer is 42.") == "arithmetic"
    assert training_form(EXTRACTION_JSON) == "extraction"
    assert training_form("The review is positive.") is None
    assert training_form("The answer is 42 apples.") is None
    assert training_form('{"topic": "ocean"}') is None
    assert training_form("positive", tasks=["arithmetic"]) is None
    assert training_form_share(["positive", "The ocean is deep.", "The answer is 3.", ""]) == 0.5
    rows = make_task("sentiment", 40).train
    assert training_form_share(r["messages"][-1]["content"] for r in rows) == 1.0


def _answers(texts):
    return [Answer(prompt="", text=t, raw=t + EOT, stopped=True, n_tokens=len(t.split()) + 1)
            for t in texts]


def test_a_collapsed_answer_set_scores_zero_and_its_vacuous_passes_are_reported():
    probes = list(PROBES.values())
    labels = [SENTIMENT_LABELS[i % 2] for i in range(len(probes))]
    r = score_probes(probes, _answers(labels))
    assert r.score == 0.0 and set(r.breakdown.values()) == {0.0}
    # format alone would have passed a third of them (the pass rate a collapse used to raise)
    assert r.extra["format_pass_rate"] == pytest.approx(40 / 120)
    assert r.extra["vacuous_share"] == r.extra["format_pass_rate"]
    assert r.extra["vacuous_by_type"]["no_commas"] == 1.0
    assert r.extra["training_form_share"] == 1.0
    assert r.extra["on_topic_share"] == 0.0 and r.extra["substance_share"] == 0.0
    assert r.examples and all("failed" in e for e in r.examples)


def test_probe_score_counts_only_full_passes():
    probes = [PROBES[f"{k}/0"] for k in PROBE_TYPES]
    texts = [GOOD_OCEAN[k] for k in PROBE_TYPES]
    texts[0] = "positive"  # all_caps: fails the format too
    texts[1] = "positive"  # all_lowercase: a vacuous pass
    r = score_probes(probes, _answers(texts))
    assert r.n == 12 and r.score == pytest.approx(10 / 12)
    assert r.extra["format_pass_rate"] == pytest.approx(11 / 12)
    assert r.extra["vacuous_share"] == pytest.approx(1 / 12)
    assert r.extra["training_form_share"] == pytest.approx(2 / 12)
    assert r.breakdown["all_lowercase"] == 0.0 and r.breakdown["no_commas"] == 1.0


def test_a_probe_built_by_hand_needs_only_substance_without_topic_words():
    probe = Probe("custom/0", "no_commas", "Say something without commas.")
    assert all(score_probe(probe, "Anything said in five words.").values())
    assert not all(score_probe(probe, "positive").values())


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
