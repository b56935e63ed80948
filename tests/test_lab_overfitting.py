"""Lab 1 (overfitting) on the tiny model: its declarations, its probe, its check's inputs."""

import math

import pytest

import ftlab
from ftlab.data import make_task
from ftlab.engine.callbacks import EvalContext
from ftlab.labs.overfitting import (
    MemorisationProbe,
    Overfitting,
    end_train_loss,
    memorisation_scores,
    verbatim,
)
from ftlab.labs.show_overfitting import overfitting_figure
from ftlab.models import load_model

KEYS = {"train_verbatim", "train_correct", "heldout_verbatim", "heldout_correct", "gap",
        "n_train", "n_heldout"}


def row(question: str, number: int) -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": f"The answer is {number}."}],
            "meta": {"answer": f"The answer is {number}.", "number": number}}


# -- declarations -------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_every_arm_is_a_valid_config_and_the_arms_differ_only_where_the_lesson_says(preset):
    lab = Overfitting(model="tiny", preset=preset)
    declared = Overfitting.presets[preset]
    assert set(lab.arms) == {"small", "early_stop", "more_data"} == set(declared.arms)
    assert lab.checked == ("small", "early_stop", "more_data") and lab.extra == ()
    cfg = {arm: lab.config(arm).resolved() for arm in lab.arms}
    small, early, more = cfg["small"], cfg["early_stop"], cfg["more_data"]
    assert small.train.max_steps == declared.base["steps"]
    # early stopping: the same run with patience on
    assert early.replace(patience=None).to_dict() == small.to_dict()
    assert small.eval.early_stopping_patience is None and early.eval.early_stopping_patience
    # more data: the same run on more examples, the same number of steps
    assert more.replace(size=small.data.size).to_dict() == small.to_dict()
    assert more.data.size >= 8 * small.data.size
    # the small arm sees its examples many times; more data at most about once or twice
    epochs = {a: c.train.max_steps * c.train.batch_size / c.data.size for a, c in cfg.items()}
    assert epochs["small"] >= 5 and epochs["more_data"] <= 2
    assert small.data.size < 500  # the "fewer than ~500 examples"
    assert all(c.train.max_steps // c.eval.every >= 6 for c in cfg.values()), \
        "the validation curve needs enough points to show its turn"


def test_the_lab_declares_its_panel_and_claim():
    lab = Overfitting(model="tiny")
    assert "20%" in lab.claim and lab.title.startswith("Lab 1")
    assert lab.watch["memo"].when == "ends"
    panel = lab.panel("early_stop")
    assert panel["patience"].value == lab.arms["early_stop"]["patience"]
    assert panel.build_config().hash() == lab.config("early_stop").hash()


# -- the memorisation probe on hand-made answers ---------------------------------------
def test_verbatim_is_an_exact_string_match():
    assert verbatim(" The answer is 24.\n", "The answer is 24.")
    assert not verbatim("The answer is 24", "The answer is 24.")
    assert not verbatim("24", "The answer is 24.")
    assert not verbatim("The answer is 24. Well done!", "The answer is 24.")
    assert not verbatim("the answer is 24.", "The answer is 24.")


def test_probe_scores_recall_and_held_out_accuracy_apart():
    train = [row("Ana has 2 and gets 3 more?", 5), row("Ben has 9 and gives away 4?", 5),
             row("Chen has 3 bags of 4?", 12), row("Dara has 7 and gets 1 more?", 8)]
    held = [row("Eli has 6 and gets 6 more?", 12), row("Farah has 8 bags of 2?", 16)]
    train_texts = ["The answer is 5.",  # verbatim
                   "The answer is 5",  # right number, not verbatim
                   "3 x 4 = 12, so the answer is 12.",  # right, not verbatim
                   "The answer is 9."]  # wrong
    held_texts = ["The answer is 12.", "The answer is 61."]
    m = memorisation_scores(train, held, train_texts, held_texts, "arithmetic")
    assert set(m) == KEYS
    assert m["train_verbatim"] == 0.25 and m["train_correct"] == 0.75
    assert m["heldout_verbatim"] == 0.5 and m["heldout_correct"] == 0.5
    assert m["gap"] == -0.25 and (m["n_train"], m["n_heldout"]) == (4, 2)
    # a model that repeats every training answer and gets no new question right
    parrot = memorisation_scores(train, held, [r["meta"]["answer"] for r in train],
                                 ["The answer is 1.", "no idea"], "arithmetic")
    assert parrot["train_verbatim"] == 1.0 and parrot["heldout_correct"] == 0.0
    assert parrot["gap"] == 1.0
    empty = memorisation_scores([], held, [], held_texts, "arithmetic")
    assert math.isnan(empty["train_verbatim"]) and empty["heldout_correct"] == 0.5


def test_the_probe_on_a_model_reports_every_key_over_the_runs_own_rows():
    model, tok = load_model("tiny")
    cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(size=12).resolved()
    splits = make_task("arithmetic", 12, seed=0, n_val=4)
    probe = MemorisationProbe(train_rows=5, heldout_rows=3)
    result = probe(model, tok, EvalContext(step=3, config=cfg, splits=splits, full=True))
    assert set(result.extra) == KEYS
    assert (result.extra["n_train"], result.extra["n_heldout"]) == (5, 3)
    assert all(0 <= result.extra[k] <= 1 for k in KEYS - {"gap", "n_train", "n_heldout"})
    assert result.score == result.extra["gap"]


# -- the check reads real runs -------------------------------------------------------
def test_measure_and_conditions_read_a_real_sweep(runs_dir):
    lab = Overfitting(model="tiny", steps=6, eval_every=2, **{"data.val_size": 4})
    lab.watch = {"memo": MemorisationProbe(train_rows=3, heldout_rows=3)}  # a quicker probe
    result = lab.sweep(seeds=(0,), progress=False)
    assert result.trained == 3
    (numbers,) = result.numbers()
    assert all(isinstance(v, (int, float)) and not math.isnan(v)
               for k, v in numbers.items()), numbers
    conds = lab.conditions(numbers)
    assert set(conds) == {"val loss turns up", "early stop near the min", "returned = best",
                          "more data: ends lower, smaller gap", "memorises"}
    assert all(isinstance(v, bool) for v in conds.values())
    small = result.runs[("small", 0)]
    assert small.metric("memo.train_verbatim", at="first") is not None
    assert end_train_loss(small) == pytest.approx(
        sum(s["loss"] for s in small.steps[-2:]) / 2)
    fig = overfitting_figure(result, seed=0)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    names = {t.name for t in fig.data}
    assert any("validation" in n for n in names) and any("training" in n for n in names)


# -- the check on hand-made numbers: seed 0's measured values, then one thing broken -------
SEED0 = {"steps": 18, "small.min_step": 8, "small.min_val": 0.48, "small.end_val": 1.13,
         "small.rise": 1.13 / 0.48 - 1, "early.stop_step": 8, "early.evals_after_best": 1,
         "early.best_val": 0.51, "early.returned_val": 0.51, "small.gap": 1.03,
         "more.end_val": 0.55, "more.gap": -0.15, "memo.before": 0.0,
         "memo.train_verbatim": 1.0, "memo.heldout_correct": 0.19}


def test_a_more_data_run_that_ends_higher_than_the_small_run_fails_the_check():
    """The old check asked only for a smaller train-validation gap, which a run that sees
    each example once has by construction (its training loss is a held-out loss): a more-data
    run ending *above* the small run passed it."""
    assert all(Overfitting.conditions(None, SEED0).values())
    worse = {**SEED0, "more.end_val": 1.30, "more.gap": 0.40}  # gap still below 1.03
    assert worse["more.gap"] < worse["small.gap"]  # what the old check read: it passed
    assert not Overfitting.conditions(None, worse)["more data: ends lower, smaller gap"]
    within_jitter = {**SEED0, "more.end_val": 1.0}  # 0.13 lower: inside the 0.2-nat jitter
    assert not Overfitting.conditions(None, within_jitter)["more data: ends lower, smaller gap"]
