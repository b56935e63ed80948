"""The engine on the tiny model: events, the stop flag, early stopping, run folders, errors."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import ftlab
from ftlab.engine import StopFlag, train
from ftlab.errors import DatasetError, TrainingError
from ftlab.runs import find_run, list_runs, load_run

from .conftest import dataset_loss


def tiny(**changes) -> ftlab.RunConfig:
    base = {"size": 40, "steps": 6, "batch_size": 4, "eval_every": 3, "eval.samples": 1,
            "eval.sample_max_new_tokens": 4}
    return ftlab.RunConfig(model="tiny", preset="cpu").replace(**{**base, **changes})


def test_events_arrive_in_order_and_match_the_result(runs_dir):
    events = []
    result = train(tiny(), on_event=events.append, progress=False)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds[1:3] == ["eval", "samples"]  # step 0: the base model, before training
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events if e.kind == "eval"] == [0, 3, 6]
    assert result.final["train_loss"] == steps[-1].loss
    assert events[-1].status == "completed" and events[-1].final["steps"] == 6


def test_stop_flag_ends_the_run_within_one_step(runs_dir):
    stop = StopFlag()

    def press_stop_at_step_2(event):
        if event.kind == "step" and event.step == 2:
            stop.set()

    result = train(tiny(steps=50), on_event=press_stop_at_step_2, stop=stop, progress=False)
    assert result.status == "stopped" and result.final["steps"] == 2
    run = load_run(result.run_dir)
    assert run.status == "stopped" and len(run.steps) == 2


def test_early_stopping_restores_best_checkpoint(runs_dir):
    # A learning rate this high on full fine-tuning makes validation loss climb quickly.
    cfg = tiny(method="full", lr=0.05, steps=30, eval_every=1, patience=2,
               **{"eval.samples": 0})
    result = train(cfg, progress=False)
    assert result.status == "early_stopped" and result.final["steps"] < 30
    during = [e["val_loss"] for e in result.evals[:-1]]  # the last one: the returned model
    best = min(during)
    f = result.final
    assert f["last_val_loss"] > best and f["best_val_loss"] == best and f["restored_best"]
    assert f["final_val_loss"] == pytest.approx(best, rel=1e-4)
    again = dataset_loss(result.model, result.tokenizer, result.splits.validation)
    assert again == pytest.approx(best, rel=0.02), "the model does not hold the best weights"


def test_run_folder_holds_config_env_metrics_and_result(runs_dir):
    result = train(tiny(), progress=False)
    d = result.run_dir
    assert d.parent == runs_dir
    assert {p.name for p in d.iterdir()} >= {"config.json", "env.json", "metrics.jsonl",
                                              "status.json", "result.json"}
    env = json.loads((d / "env.json").read_text())
    assert env["packages"]["transformers"].startswith("5.") and env["seed"] == 0
    run = load_run(d)
    assert run.status == "completed" and run.config.hash() == result.config.hash()
    assert len(run.steps) == 6 and len(run.evals) == 3 and run.samples
    assert run.final["peak_memory_bytes"] > 0
    assert {"weights", "gradients", "optimizer_state", "activations"} <= set(
        run.final["memory_breakdown"])
    assert find_run(result.config).path == d
    assert [r.path for r in list_runs()] == [d]


def test_a_killed_run_is_marked_interrupted(runs_dir):
    code = textwrap.dedent(f"""
        import os, ftlab
        from ftlab.engine import train
        def die(event):
            if event.kind == "step" and event.step == 2:
                os._exit(9)   # the process dies mid-run, as with a crash or a kill
        train(ftlab.RunConfig(model="tiny", preset="cpu").replace(
            size=40, steps=20, batch_size=4, **{{"eval.samples": 0}}),
            on_event=die, runs_dir={str(runs_dir)!r}, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300,
                          env=dict(os.environ))
    assert proc.returncode == 9
    [run] = list_runs(runs_dir)
    assert run.status == "interrupted" and len(run.steps) >= 1


def test_a_failing_run_keeps_what_it_measured(runs_dir):
    def broken_probe(model, tok, ctx):
        if model.training is False and len(calls) == 1:
            raise RuntimeError("probe exploded")
        calls.append(1)
        return {"probe": 1.0}

    calls: list = []
    with pytest.raises(TrainingError, match="Training failed at step 3: RuntimeError: probe"):
        train(tiny(), evaluators={"probe": broken_probe}, progress=False)
    [run] = list_runs(runs_dir)
    assert run.status == "failed" and "probe exploded" in run.error
    assert [s["step"] for s in run.steps] == [1, 2, 3]


def test_out_of_memory_message_says_what_to_lower(runs_dir):
    def oom(model, tok, ctx):
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        calls.append(1)
        return {}

    calls: list = []
    with pytest.raises(TrainingError, match="Out of memory at step 3 .* batch_size 4"):
        train(tiny(), evaluators={"oom": oom}, progress=False)
    assert list_runs(runs_dir)[0].status == "failed"


def test_bad_dataset_file_fails_before_any_run_starts(runs_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(DatasetError, match="line 1: the last message must be the assistant"):
        train(tiny(**{"data.path": str(bad)}), progress=False)
    assert list_runs(runs_dir) == []


def test_user_jsonl_dataset_trains(runs_dir, tmp_path):
    rows = [{"prompt": f"Say {i}", "completion": f"{i}"} for i in range(10)]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = train(tiny(**{"data.path": str(path), "steps": 2}), progress=False)
    assert result.status == "completed" and len(result.splits.train) == 6


def test_lab_evaluators_add_metrics_to_every_evaluation(runs_dir):
    seen = []

    def norm(model, tok, ctx):
        seen.append((ctx.step, ctx.full, len(ctx.splits.validation)))
        return {"weight_norm": 1.0}

    result = train(tiny(), evaluators={"norm": norm}, progress=False)
    assert [e["metrics"]["norm.weight_norm"] for e in result.evals] == [1.0, 1.0, 1.0]
    assert seen == [(0, True, 24), (3, False, 24), (6, True, 24)]


def test_a_validation_loss_is_told_before_the_evaluators_run_and_never_stored(runs_dir):
    """A curve's first point need not wait for the evaluators' generation (a minute at step 0
    of a lab): ``ValLossMeasured`` comes first, live only; the folder holds the evals."""
    heard = []

    def slow(model, tok, ctx):
        heard.append(("evaluator", ctx.step))
        return 1.0

    def listen(event):
        if event.kind in ("val_loss", "eval"):
            heard.append((event.kind, event.step))

    result = train(tiny(), evaluators={"slow": slow}, on_event=listen, progress=False)
    assert heard[:3] == [("val_loss", 0), ("evaluator", 0), ("eval", 0)]
    assert [s for k, s in heard if k == "val_loss"] == [0, 3, 6]
    records = (result.path / "metrics.jsonl").read_text()
    assert '"val_loss"' in records and '"kind": "val_loss"' not in records
    assert [e["step"] for e in load_run(result.path).evals] == [0, 3, 6]


def test_evaluators_report_under_their_own_names_and_never_overwrite(runs_dir):
    from ftlab.engine.callbacks import EvalContext, run_evaluators
    from ftlab.evaluate import EvalResult

    ctx = EvalContext(step=0, config=None, splits=None, full=True)
    both = run_evaluators({"a": lambda m, t, c: {"score": 1.0},
                           "b": lambda m, t, c: EvalResult("b", 0.5, 2, {"x": 0.25})},
                          None, None, ctx)
    assert both == {"a.score": 1.0, "b.score": 0.5, "b.x": 0.25}
    with pytest.raises(ValueError, match="'a.b.c' twice"):
        run_evaluators({"a": lambda m, t, c: {"b.c": 1.0}, "a.b": lambda m, t, c: {"c": 2.0}},
                       None, None, ctx)


def test_ends_only_evaluators_run_before_and_after_training_only(runs_dir):
    calls = []

    def costly(model, tok, ctx):
        calls.append(ctx.step)
        return {"x": 1.0}

    costly.when = "ends"
    train(tiny(steps=6, eval_every=2), evaluators={"costly": costly}, progress=False)
    assert calls == [0, 6]


def test_a_lab_adds_its_own_trainer_callback(runs_dir):
    from transformers import TrainerCallback

    class CountSteps(TrainerCallback):
        n = 0

        def on_step_end(self, args, state, control, **kw):
            CountSteps.n += 1

    train(tiny(steps=4), callbacks=[CountSteps()], progress=False)
    assert CountSteps.n == 4


def test_the_same_run_again_is_loaded_not_trained(runs_dir):
    first = train(tiny(steps=2), progress=False)
    events = []
    again = train(tiny(steps=2), reuse=True, on_event=events.append, progress=False)
    assert again.from_cache and again.path == first.path and again.model is None
    assert again.final == first.final and again.evals == first.evals
    assert [e.kind for e in events][0] == "start" and events[-1].kind == "end"
    assert len([e for e in events if e.kind == "step"]) == 2  # a dashboard redraws it
    other = train(tiny(steps=2, seed=1), reuse=True, progress=False)
    assert not other.from_cache and other.path != first.path


def test_saved_weights_reload_as_the_trained_model(runs_dir):
    from ftlab.runs import load_trained

    result = train(tiny(steps=3, save_weights=True, **{"eval.samples": 0}), progress=False)
    model, tok = load_trained(result.run_dir)
    rows = result.splits.validation
    assert dataset_loss(model, tok, rows) == pytest.approx(
        dataset_loss(result.model, result.tokenizer, rows), rel=1e-5)
    assert result.final["memory_breakdown"]["optimizer_state"] == 2 * result.final[
        "memory_breakdown"]["gradients"]
