"""Lab 3 (instruction-following collapse): the mixed-in general data, the probe watch and
the lab's check, on hand-made answers and the tiny model."""

from __future__ import annotations

import re

import pytest

import ftlab
from ftlab.data.mix import general_rows, mixed_rows, with_general
from ftlab.data.probes import END_PHRASE, TOPICS, load_probes
from ftlab.data.tasks import make_task
from ftlab.engine import load_splits
from ftlab.errors import ConfigError
from ftlab.evaluate.behaviour import (
    ProbeWatch,
    Sizes,
    paired_diff,
    run_paired,
    saved_answers,
)
from ftlab.evaluate.checks import has_substance
from ftlab.evaluate.probes import training_form

# -- the general data mixed in: never the probes ----------------------------------------


def test_general_rows_are_chats_that_never_ask_a_probe_or_its_topic():
    rows = general_rows()
    assert len(rows) >= 48
    prompts = {p.prompt.lower() for p in load_probes()}
    for row in rows:
        user, answer = (m["content"] for m in row["messages"])
        assert user.lower() not in prompts
        for topic in TOPICS:  # not a probe topic: at most one of its words in the request
            hits = [w for w in topic.words if re.search(rf"\b{w}\b", user.lower())]
            assert len(hits) < 2, (user, topic.prompt, hits)
        # none of the probes' verifiable constraints either
        for phrase in ("capital letters", "lowercase", "words.", "json", "do not use",
                       "include the word", END_PHRASE.lower(), "paragraph", "start your",
                       "commas", "bullet"):
            assert phrase not in user.lower(), (phrase, user)
        # a real answer: substance, and never in a training task's form
        assert has_substance(answer) and training_form(answer) is None


def test_mixing_keeps_the_size_and_replaces_the_asked_share_of_training_rows():
    task = make_task("sentiment", 40, seed=3).train
    mixed = mixed_rows(task, 0.25, seed=3)
    general = {r["messages"][0]["content"] for r in general_rows()}
    n_general = sum(r["messages"][0]["content"] in general for r in mixed)
    assert len(mixed) == 40 and n_general == 10
    assert mixed == mixed_rows(task, 0.25, seed=3), "the mix is seeded"
    assert mixed_rows(task, 0.0) == task
    # more general rows than the file holds: it cycles, never fails
    assert len(mixed_rows(make_task("sentiment", 200).train, 0.5)) == 200
    with pytest.raises(ConfigError, match="data.mix_share"):
        mixed_rows(task, 1.0)


def test_the_mix_goes_into_training_rows_only():
    cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(task="sentiment", size=20,
                                                              mix_share=0.5).resolved()
    splits, plain = load_splits(cfg), load_splits(cfg.replace(mix_share=0.0))
    assert splits.validation == plain.validation and splits.test == plain.test
    reviews = [r for r in splits.train if r["messages"][0]["content"].startswith("Review:")]
    assert len(splits.train) == 20 and len(reviews) == 10
    assert with_general(plain, 0.0, 0) is plain


# -- the paired interval --------------------------------------------------------------------


def test_paired_diff_is_the_mean_change_with_a_t_interval():
    before = [1.0] * 8 + [0.0] * 16
    after = [0.0] * 24
    d, lo, hi = paired_diff(before, after)
    assert d == pytest.approx(-1 / 3)
    # sd 0.4816, se 0.0983, t(23) read as t(20) = 2.09
    assert (lo, hi) == pytest.approx((-1 / 3 - 2.09 * 0.09829, -1 / 3 + 2.09 * 0.09829), abs=1e-3)
    assert hi < 0, "a drop of 8 passes out of 24 to none is beyond the noise"
    d, lo, hi = paired_diff([1, 0, 1, 0], [0, 1, 0, 1])
    assert d == 0 and lo < 0 < hi


# -- the probe watch on the tiny model ----------------------------------------------------------

SMALL = Sizes(probes_per_type=1, live_per_type=1, probe_tokens=4, other_rows=2,
              bench_per_area=1)


def test_probe_watch_reports_live_and_per_probe_outcomes_and_keeps_answers(runs_dir):
    watch = {"probes": ProbeWatch("cpu", sizes=SMALL)}
    cfg = ftlab.RunConfig(model="tiny", preset="cpu", method="full").replace(
        task="sentiment", size=12, steps=2, batch_size=4, eval_every=1,
        **{"eval.samples": 0, "data.val_size": 4})
    run = ftlab.train(cfg, evaluators=watch, progress=False)
    steps, live = run.curve("probes.live")
    assert steps == [0, 1, 2] and all(0 <= v <= 1 for v in live)
    ends = [e for e in run.evals if e["full"]]
    assert [e["step"] for e in ends] == [0, 2]
    passes = {k for k in ends[-1]["metrics"] if k.startswith("probes.pass/")}
    assert len(passes) == 12  # one probe of each type
    d, lo, hi = run_paired(run, "probes.pass/")
    assert lo <= d <= hi
    before, after = saved_answers(run, "probes", "first"), saved_answers(run, "probes")
    assert [a["id"] for a in before] == [a["id"] for a in after]
    assert {"prompt", "answer", "passed", "format", "training_form"} <= set(after[0])


# -- the check on hand-made numbers: it passes a collapse and fails what is not one ------------


def _numbers(**changes: float) -> dict[str, float]:
    m = {"aggressive.probes_before": 0.33, "aggressive.probes": 0.0,
         "aggressive.drop_ci_low": 0.13, "aggressive.form_before": 0.0, "aggressive.form": 0.9,
         "aggressive.task": 1.0, "gentle.probes": 0.29, "gentle.task": 1.0,
         "gentle_vs_aggressive_ci_low": 0.10}
    return {**m, **changes}


@pytest.mark.parametrize(("changes", "fails"), [
    ({}, None),
    ({"aggressive.drop_ci_low": -0.02}, "aggressive: pass rate drops beyond noise"),
    ({"aggressive.form": 0.2}, "aggressive: training form rises"),
    ({"aggressive.task": 0.5}, "aggressive: task learned"),
    ({"gentle_vs_aggressive_ci_low": -0.01}, "gentle: keeps more than aggressive, beyond noise"),
    ({"gentle.task": 0.7}, "gentle: task learned"),
])
def test_the_collapse_check_fails_exactly_the_condition_that_is_not_met(changes, fails):
    from ftlab.labs.collapse import Collapse

    conds = Collapse.conditions(None, _numbers(**changes))
    assert [name for name, ok in conds.items() if not ok] == ([fails] if fails else [])


def test_gentle_keeps_more_is_read_from_the_paired_interval_not_one_probe_of_slack():
    """The old check ("gentle keeps >= 2/3 of the base pass rate") passed 6 of 24 probes
    against a base of 8 with no interval: one probe of slack. Two runs that differ by one
    probe are no evidence; the new check reads the paired interval of the two runs."""
    from types import SimpleNamespace

    from ftlab.evaluate.behaviour import runs_paired
    from ftlab.labs.collapse import Collapse

    def run(passes):
        return SimpleNamespace(evals=[{"full": True, "metrics": {
            f"probes.pass/p{i}": float(v) for i, v in enumerate(passes)}}])

    aggressive = [0] * 24
    one_more = [1] + [0] * 23
    old_check = sum(one_more) / 24 >= 2 / 3 * (1 / 24)  # base 1 of 24: kept it all
    d, lo, hi = runs_paired(run(one_more), run(aggressive), ("probes.pass/",))
    assert old_check and lo < 0 < d
    assert not Collapse.conditions(None, _numbers(gentle_vs_aggressive_ci_low=lo))[
        "gentle: keeps more than aggressive, beyond noise"]
    d, lo, hi = runs_paired(run([1] * 7 + [0] * 17), run(aggressive), ("probes.pass/",))
    assert lo > 0
