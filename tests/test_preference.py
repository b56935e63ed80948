"""Preference runs (DPO, IPO, KTO, ORPO, SimPO) are runs: config, refusals before a model
loads, events, folder, Stop, a frozen reference, and a pairs file of the learner's own."""

import json
import math

import pytest

from ftlab.config import PREF_PRESETS, PRESETS, RunConfig
from ftlab.engine import StopFlag, train
from ftlab.engine.preference import LOSSES, PreferencePart, split_pairs
from ftlab.errors import ConfigError, DatasetError
from ftlab.rlhf.watch import AnswerWatch
from ftlab.runs import find_run, load_run

ALL_LOSSES = ("dpo", "ipo", "kto", "orpo", "simpo")


def pref(loss: str = "dpo", **changes) -> RunConfig:
    """A small preference run of the tiny model: 2 pairs a step, 2 steps."""
    base = {"size": 10, "steps": 2, "batch_size": 2, "eval_every": 1, "eval.samples": 1}
    return RunConfig(model="tiny", method="lora", preset="cpu",
                     pref={"loss": loss}).replace(**{**base, **changes})


def watch() -> dict:
    return {"heldout": AnswerWatch(max_new_tokens=8, n_arithmetic=4)}


def pairs_file(path, n: int = 12, bad_line: int | None = None):
    """``n`` lines of arithmetic pairs; ``bad_line`` (1-based) has no ``rejected``."""
    rows = []
    for i in range(1, n + 1):
        row = {"prompt": f"What is {i} + {i}?", "chosen": f"{2 * i}.",
               "rejected": f"I think it is {2 * i + 1}, but I am not sure."}
        if i == bad_line:
            del row["rejected"]
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


def question(row: dict) -> str:
    return row["prompt"][-1]["content"]


def no_run_folder(runs_dir) -> bool:
    return not runs_dir.exists() or not any(runs_dir.iterdir())


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture
def trainers(monkeypatch):
    """Each trainer a preference run builds, with its policy's weights before training."""
    built = []
    build = PreferencePart.build

    def spy(self, callbacks, run_dir):
        trainer = build(self, callbacks, run_dir)
        built.append((trainer, weights(trainer.model)))
        return trainer

    monkeypatch.setattr(PreferencePart, "build", spy)
    return built


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize("knob, value", [("loss", "rlhf"), ("beta", 0.0), ("beta", -0.1),
                                         ("ld_alpha", 1.5), ("ld_alpha", -0.1),
                                         ("reference", "frozen"), ("p_longer", 1.2),
                                         ("pairs_per_prompt", 0), ("max_length", 8)])
def test_pref_knobs_are_validated_like_every_knob(knob, value):
    cfg = RunConfig(pref={knob: value})
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == f"pref.{knob}"
    assert f"pref.{knob}" in str(err.value)


def test_pref_preset_fills_the_preference_sizes_and_the_section_survives_a_trip():
    cpu = RunConfig(model="tiny", preset="cpu", pref=True).resolved()
    for dotted, value in {**PRESETS["cpu"], **PREF_PRESETS["cpu"]}.items():
        section, name = dotted.split(".")
        assert getattr(getattr(cpu, section), name) == value, dotted
    assert cpu.pref.max_length == PREF_PRESETS["cpu"]["pref.max_length"]
    sft = RunConfig(model="tiny", preset="cpu").resolved()
    assert sft.pref is None and sft.data.size != cpu.data.size
    # Knobs by dotted name; the section and the hash survive config.json.
    changed = cpu.replace(**{"pref.loss": "ipo", "pref.beta": 0.3, "pref.ld_alpha": None})
    assert changed.pref.loss == "ipo" and changed.pref.beta == 0.3
    assert {"pref.loss", "pref.beta", "pref.reference"} <= changed.knob_names()
    d = json.loads(json.dumps(changed.to_dict()))
    assert d["pref"]["loss"] == "ipo"
    back = RunConfig.from_dict(d)
    assert back == changed and back.hash() == changed.hash()
    assert changed.hash() != changed.replace(**{"pref.beta": 0.2}).hash()


def test_a_run_without_pref_keeps_its_hash():
    cfg = RunConfig(model="tiny", preset="cpu").replace(steps=3)
    assert "pref" not in cfg.to_dict()
    # The hash this config had before preference tuning existed (4c7e366^): every earlier
    # run folder is still found in the run cache.
    assert cfg.hash() == "95021cf93708"
    assert cfg.replace(pref=True).hash() != cfg.hash()
    assert cfg.replace(pref=True).replace(pref="off").hash() == cfg.hash()


def test_rl_and_pref_together_are_refused():
    cfg = RunConfig(model="tiny", rl=True, pref=True)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == "pref" and "rl=None or pref=None" in str(err.value)


def test_a_pref_knob_does_not_switch_a_supervised_run_into_a_preference_run():
    with pytest.raises(ConfigError) as err:
        RunConfig(model="tiny", preset="cpu").replace(**{"pref.beta": 0.2})
    assert err.value.field == "pref.beta"
    assert "--set pref=on" in str(err.value) and "pref=True" in str(err.value)
    cfg = RunConfig(model="tiny").replace(pref=True, **{"pref.beta": 0.2})
    assert cfg.pref is not None and cfg.pref.beta == 0.2
    assert cfg.replace(pref=False).pref is None


# ---------------------------------------------------- refused before any model is loaded


# (name, loss, changes, the field refused, a phrase of the message)
REFUSED = [
    ("data.path", "dpo", {}, "data.path", "set pref.path"),
    *[(f"prefix with {loss}", loss, {"method": "prefix"}, "method", "use LoRA")
      for loss in ALL_LOSSES],
    ("prompt with orpo", "orpo", {"method": "prompt"}, "method", "'lora', 'qlora', 'full'"),
    ("prompt with simpo", "simpo", {"method": "prompt"}, "method", "'lora', 'qlora', 'full'"),
    ("dpo without a reference", "dpo", {"pref.reference": "none"}, "pref.reference",
     "only orpo and simpo train without one"),
    ("simpo with a live reference", "simpo", {"pref.reference": "live"}, "pref.reference",
     "SIMPO uses no reference model"),
    ("ld_alpha with simpo", "simpo", {"pref.ld_alpha": 0.5}, "pref.ld_alpha",
     "an option of DPO"),
    ("kto precomputed", "kto", {"pref.reference": "precomputed"}, "pref.reference",
     "live reference"),
    ("a batch larger than the pairs", "dpo", {"batch_size": 64}, "train.batch_size",
     "at most the 16 training rows"),
]


@pytest.mark.parametrize(("name", "loss", "changes", "field", "phrase"), REFUSED,
                         ids=[c[0] for c in REFUSED])
def test_preference_run_refuses_what_it_cannot_do_before_loading_a_model(
        runs_dir, tmp_path, monkeypatch, name, loss, changes, field, phrase):
    import ftlab.engine.preference as preference

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    monkeypatch.setattr(preference, "load_model", no_model)
    if field == "data.path":
        rows = tmp_path / "rows.jsonl"
        rows.write_text(json.dumps({"prompt": "2+2?", "completion": "4"}) + "\n")
        changes = {"data.path": str(rows)}
    with pytest.raises(ConfigError) as err:
        train(pref(loss, **changes), progress=False)
    assert err.value.field == field and phrase in str(err.value)
    assert no_run_folder(runs_dir)


# ------------------------------------------------------------------------- the tiny model


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_every_loss_trains_the_tiny_model(runs_dir, trainers, loss):
    events = []
    run = train(pref(loss), evaluators=watch(), on_event=events.append, progress=False)
    assert run.status == "completed"
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2] == [s["step"] for s in run.steps]
    paired = LOSSES[loss].paired
    for e in steps:
        # KTO's rows are single answers: TRL logs no share of pairs won, and a margin only
        # for a batch that holds a good and a bad one.
        assert ("pref.accuracy" in e.metrics) == paired
        assert "pref.margin" in e.metrics or not paired
        assert {"pref.chosen", "pref.rejected"} & set(e.metrics)
        assert all(math.isfinite(v) for v in e.metrics.values())
    assert [e["step"] for e in run.evals] == [0, 1, 2]
    for e in run.evals:
        m = e["metrics"]
        assert {"pairs.margin", "heldout.correct", "heldout.words"} <= set(m), m
        assert 0 <= m["heldout.correct"] <= 1 and m["heldout.words"] >= 0

    f = run.final
    assert f["steps"] == 2 and f["loss"] == loss
    assert f["reference"] == ("live" if loss in ("dpo", "ipo", "kto") else "none")
    assert f["train_pairs"] == (16 if paired else 32)  # 8 prompts x 2 pairs (x 2 for KTO)
    assert "pairs.margin" in f["final_metrics"]

    # The folder: config.json with its pref section, found again by the run cache.
    saved = json.loads((run.path / "config.json").read_text())
    assert saved["pref"]["loss"] == loss and saved["rl"] is None
    back = load_run(run.path)
    assert back.config.pref == run.config.pref and back.status == "completed"
    assert back.final["reference"] == f["reference"] and len(back.steps) == 2
    assert find_run(pref(loss), runs_dir, watch()).path == run.path

    # LoRA: only the adapters moved; the base (the reference, adapters off) is as loaded.
    (trainer, before), = trainers
    after = weights(run.model)
    base = [n for n in before if "lora_" not in n]
    assert base and all(after[n].equal(before[n]) for n in base)
    assert any(not after[n].equal(before[n]) for n in before if "lora_" in n)


def test_stop_ends_a_preference_run_after_the_step(runs_dir):
    stop = StopFlag()
    run = train(pref("dpo", steps=6, eval_every=6), stop=stop, progress=False,
                on_event=lambda e: stop.set() if e.kind == "step" else None)
    assert run.status == "stopped" and run.final["steps"] == 1 and len(run.steps) == 1
    assert load_run(run.path).status == "stopped"


def test_full_dpo_trains_the_policy_against_a_frozen_copy(runs_dir, trainers):
    run = train(pref("dpo", method="full"), progress=False)
    assert run.status == "completed" and run.final["reference"] == "live"
    (trainer, before), = trainers
    ref = trainer.ref_model
    assert ref is not None and ref is not run.model
    # The reference is the policy as it started, and stays so; the policy moved.
    ref_weights = weights(ref)
    assert ref_weights.keys() == before.keys()
    assert all(ref_weights[n].equal(before[n]) for n in before)
    after = weights(run.model)
    assert any(not after[n].equal(before[n]) for n in before)


# ------------------------------------------------------------------------- a pairs file


@pytest.mark.parametrize("loss, n_train, n_held", [("dpo", 10, 2), ("kto", 20, 4)])
def test_a_pairs_file_trains(runs_dir, tmp_path, loss, n_train, n_held):
    path = pairs_file(tmp_path / "pairs.jsonl")
    run = train(pref(loss, **{"pref.path": str(path)}), progress=False)
    assert run.status == "completed" and run.final["steps"] == 2
    # A fifth of the pairs held out; KTO learns each pair as a good and a bad answer.
    assert (run.final["train_pairs"], run.final["heldout_pairs"]) == (n_train, n_held)
    assert json.loads((run.path / "config.json").read_text())["pref"]["path"] == str(path)


def test_a_bad_pairs_file_names_its_line_and_leaves_no_folder(runs_dir, tmp_path):
    path = pairs_file(tmp_path / "pairs.jsonl", bad_line=3)
    with pytest.raises(DatasetError) as err:
        train(pref("dpo", **{"pref.path": str(path)}), progress=False)
    assert err.value.line == 3
    assert "pairs.jsonl, line 3" in str(err.value) and "'rejected'" in str(err.value)
    assert no_run_folder(runs_dir)


def test_kto_reads_a_pairs_file_by_pair_and_an_unpaired_file_as_it_is(tmp_path):
    path = pairs_file(tmp_path / "pairs.jsonl", n=10)
    train_rows, held = split_pairs(pref("kto", **{"pref.path": str(path)}))
    assert sorted(r["label"] for r in train_rows) == [False] * 8 + [True] * 8
    assert [r["label"] for r in held] == [True, False] * 2
    # One question's two answers are on one side: held-out questions are never trained on.
    assert not {question(r) for r in held} & {question(r) for r in train_rows}
    # Shuffled: TRL's KL term pairs each answer with its neighbour's prompt, which must
    # mostly be another question's, not the same question's other answer.
    same = sum(question(a) == question(b) for a, b in zip(train_rows, train_rows[1:]))
    assert same < 8
    good = {question(r): r["completion"][0]["content"] for r in train_rows if r["label"]}
    assert all(good[q] == f"{2 * int(q.split()[2])}." for q in good)  # chosen is the good one

    kto = tmp_path / "kto.jsonl"
    kto.write_text("".join(json.dumps({"prompt": f"{i}+{i}?", "completion": str(2 * i + i % 2),
                                       "label": i % 2 == 0}) + "\n" for i in range(10)))
    train_rows, held = split_pairs(pref("kto", **{"pref.path": str(kto)}))
    assert len(train_rows) == 8 and len(held) == 2
    assert not {question(r) for r in held} & {question(r) for r in train_rows}



def test_a_panel_builds_the_same_preference_config():
    from ftlab.widgets import ControlPanel

    knobs = ["pref.loss", "pref.beta", "pref.p_longer", "pref.ld_alpha", "steps", "lr"]
    for loss, beta in (("dpo", 0.1), ("simpo", 2.0)):  # each objective's usual beta
        panel = ControlPanel(pref(loss), knobs=knobs)
        built = panel.build_config()
        assert built.pref.loss == loss and built.pref.beta == pytest.approx(beta)
        assert built.pref.ld_alpha is None  # an optional knob left off stays off
        assert built.resolved().pref == pref(loss).resolved().pref
    panel = ControlPanel(pref("dpo"), knobs=knobs)
    panel["pref.p_longer"].value = 1.0
    assert panel.build_config().pref.p_longer == 1.0
    panel["pref.ld_alpha"].value = 0.0  # LD-DPO's strongest setting, not "off"
    assert panel.build_config().pref.ld_alpha == 0.0
    panel["pref.ld_alpha"].value = 1.0  # plain DPO: the same run as leaving it unset
    assert panel.build_config().pref.ld_alpha is None
    panel["pref.loss"].value = "simpo"  # beta was DPO's usual: it follows to SimPO's
    assert panel.build_config().pref.beta == pytest.approx(2.0)
    panel["pref.beta"].value = 3.0
    panel["pref.loss"].value = "orpo"  # a beta the learner chose stays
    assert panel.build_config().pref.beta == pytest.approx(3.0)
    with pytest.raises(ConfigError):
        panel["pref.p_longer"].value = 1.5



def test_the_memory_check_and_the_trainers_agree_on_which_objectives_need_a_reference():
    from ftlab.config import REFERENCE_FREE

    assert {name for name, loss in LOSSES.items() if not loss.needs_reference} == REFERENCE_FREE


def test_kto_needs_two_answers_a_batch(runs_dir, monkeypatch):
    from ftlab.engine import preference

    monkeypatch.setattr(preference, "load_model", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(ConfigError) as err:
        train(pref("kto", batch_size=1), progress=False)
    assert err.value.field == "train.batch_size" and "KL" in str(err.value)
    assert no_run_folder(runs_dir)


def test_a_pairs_file_is_held_out_by_prompt_and_shuffled_by_seed(tmp_path):
    rows = [json.dumps({"prompt": f"What is {i} + {i}?", "chosen": f"{2 * i}.",
                        "rejected": f"{2 * i + j}."}) for i in range(1, 11) for j in (1, 2)]
    path = tmp_path / "two_each.jsonl"
    path.write_text("\n".join(rows) + "\n")
    held_by_seed = []
    for seed in (0, 1):
        for loss in ("dpo", "kto"):
            cfg = pref(loss, seed=seed, **{"pref.path": str(path)}).resolved()
            train_rows, held = split_pairs(cfg)
            trained = {question(r) for r in train_rows}
            assert not trained & {question(r) for r in held}  # no question on both sides
            assert len(held) == (4 if loss == "dpo" else 8)  # 2 of 10 prompts, 2 pairs each
        held_by_seed.append({question(r) for r in held})
    assert held_by_seed[0] != held_by_seed[1]


def test_training_never_sees_a_question_the_answer_watch_asks(monkeypatch):
    from ftlab.engine import preference
    from ftlab.rlhf import heldout_questions, make_prompts

    asked = heldout_questions()[-1]  # an arithmetic question of the watch
    real = make_prompts
    monkeypatch.setattr(preference, "make_prompts",
                        lambda n, seed=0: [asked, *real(n, seed=seed)[1:]])
    train_rows, held = split_pairs(pref("dpo").resolved())
    assert asked.question not in {question(r) for r in train_rows + held}


# --------------------------------------------------------------------- the embedded model


@pytest.mark.slow
def test_dpo_on_the_real_model_learns_to_prefer_the_chosen_answers(runs_dir, trainers):
    """Two DPO steps of SmolLM2 at a learning rate that moves it: on the training pairs the
    chosen answer pulls ahead of the rejected one, and only the adapters changed."""
    cfg = RunConfig(method="lora", preset="cpu", pref={"loss": "dpo", "p_longer": 1.0}).replace(
        size=10, steps=2, batch_size=4, lr=5e-4, eval_every=2, **{"eval.samples": 1})
    events = []
    run = train(cfg, on_event=events.append, progress=False)
    assert run.status == "completed" and run.final["reference"] == "live"
    steps = [e.metrics for e in events if e.kind == "step"]
    # Step 1 scores the pairs before any update: policy = reference, so the margin is 0.
    assert steps[0]["pref.margin"] == pytest.approx(0.0, abs=1e-4)
    assert steps[1]["pref.margin"] > 0.01, steps
    first, last = run.evals[0]["metrics"], run.evals[-1]["metrics"]
    assert first["pairs.margin"] == pytest.approx(0.0, abs=1e-4)  # held-out, before training
    assert math.isfinite(last["pairs.margin"])
    samples = [e for e in events if e.kind == "samples"]
    assert samples and samples[0].samples[0]["answer"].strip()
    (trainer, before), = trainers
    after = weights(run.model)
    assert all(after[n].equal(before[n]) for n in before if "lora_" not in n)
