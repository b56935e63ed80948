"""``train.report_to``: the trainer's logs in TensorBoard and MLflow, offline and as files that
each tracker's own reader loads, equal to the run folder's record (``ftlab.tracking``)."""

import json
import socket
import warnings
from pathlib import Path

import pytest

import ftlab
from ftlab import tracking
from ftlab.cli import build_parser, config_from_args
from ftlab.engine import train
from ftlab.errors import ConfigError, MissingDependencyError, TrainingError
from ftlab.runs import list_runs, load_run

from .test_cli import ftlab as run_cli

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
mlflow = pytest.importorskip("mlflow")


def tiny(**changes) -> ftlab.RunConfig:
    """3 steps, evaluations at 0 and 2 and one after training (step 3): the evaluation
    after ``train()`` must land in the same tracker run."""
    base = {"size": 16, "steps": 3, "batch_size": 4, "eval_every": 2, "eval.samples": 0,
            "data.val_size": 4, "lr": 1e-2}
    return ftlab.RunConfig(model="tiny", preset="cpu").replace(**{**base, **changes})


@pytest.fixture
def offline(runs_dir, monkeypatch):
    """No tracker settings of the user's, and no connection out of this process."""
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR",
                "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)

    def refuse(self, address, *args, **kwargs):
        raise AssertionError(f"a tracker tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return runs_dir


def _losses(run) -> tuple[list[int], list[float]]:
    return [s["step"] for s in run.steps], [s["loss"] for s in run.steps]


def _tensorboard(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_runs(runs_dir):
    mlflow.set_tracking_uri((runs_dir / "mlruns").resolve().as_uri())
    return mlflow.search_runs(experiment_names=["ftlab"])


def test_tensorboard_event_files_in_the_run_folder_hold_its_losses(offline, tmp_path,
                                                                    monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the Trainer's default logging dir would be ./runs/<date>
    result = train(tiny(report_to="tensorboard"), progress=False)
    run = load_run(result.run_dir)
    steps, losses = _losses(run)
    assert steps == [1, 2, 3]
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    scalars = _tensorboard(run.path)
    assert [s for s, _ in scalars["train/loss"]] == steps
    assert [v for _, v in scalars["train/loss"]] == pytest.approx(losses, rel=1e-6)  # float32
    val = [(e["step"], e["val_loss"]) for e in run.evals]
    assert [s for s, _ in scalars["eval/loss"]] == [s for s, _ in val] == [0, 2, 3]
    assert [v for _, v in scalars["eval/loss"]] == pytest.approx([v for _, v in val], rel=1e-6)
    assert not any(cwd.iterdir()) and not (run.path / "runs").exists()
    assert not (offline / "mlruns").exists()


def test_mlflow_file_store_holds_one_run_with_its_losses_and_learning_rate(offline):
    result = train(tiny(report_to="mlflow"), progress=False)
    run = load_run(result.run_dir)
    steps, losses = _losses(run)
    found = _mlflow_runs(offline)
    assert len(found) == 1  # the evaluation after train() went into it, not into a new run
    row = found.iloc[0]
    assert row["tags.mlflow.runName"] == run.path.name
    assert row["tags.ftlab.run_folder"] == str(run.path)
    assert row["tags.ftlab.status"] == "completed" and row["status"] == "FINISHED"
    assert row["metrics.loss"] == pytest.approx(losses[-1], rel=1e-9)
    assert float(row["params.learning_rate"]) == run.config.train.learning_rate == 1e-2
    client = mlflow.MlflowClient()
    history = client.get_metric_history(row["run_id"], "loss")
    assert [(m.step, m.value) for m in history] == list(zip(steps, losses))
    evals = client.get_metric_history(row["run_id"], "eval_loss")
    assert [m.step for m in evals] == [e["step"] for e in run.evals] == [0, 2, 3]
    assert [m.value for m in evals] == pytest.approx([e["val_loss"] for e in run.evals],
                                                     rel=1e-9)
    assert not (run.path / "tensorboard").exists()
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

    assert MLFLOW_DISABLE_TELEMETRY.get()  # set before the Trainer imported mlflow


def test_both_trackers_at_once_and_the_runs_listing_ignores_mlruns(offline):
    result = train(tiny(report_to="tensorboard,mlflow"), progress=False)
    _, losses = _losses(load_run(result.run_dir))
    assert [v for _, v in _tensorboard(result.run_dir)["train/loss"]] == pytest.approx(
        losses, rel=1e-6)
    assert _mlflow_runs(offline)["metrics.loss"].tolist() == pytest.approx([losses[-1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mlruns/ is no damaged run folder
        assert [r.path for r in list_runs()] == [result.run_dir]


def test_a_grpo_run_reports_its_rewards_too(offline):
    cfg = ftlab.RunConfig(model="tiny", preset="cpu", rl=True).replace(**{
        "size": 10, "steps": 2, "batch_size": 2, "rl.generations": 2,
        "rl.max_completion_length": 6, "eval_every": 1, "eval.samples": 0,
        "train.report_to": "tensorboard,mlflow"})
    result = train(cfg, progress=False)
    run = load_run(result.run_dir)
    gold = [s["metrics"]["rl.gold"] for s in run.steps]
    scalars = _tensorboard(run.path)
    assert [v for _, v in scalars["train/rewards/gold/mean"]] == pytest.approx(gold, rel=1e-6)
    row = _mlflow_runs(offline).iloc[0]
    assert row["tags.mlflow.runName"] == run.path.name
    assert row["metrics.rewards/gold/mean"] == pytest.approx(gold[-1], rel=1e-9)


def test_a_failed_run_ends_its_mlflow_run_failed(offline):
    def boom(model, tok, ctx):
        raise RuntimeError("evaluator broke")

    with pytest.raises(TrainingError) as e:
        train(tiny(report_to="mlflow"), evaluators={"boom": boom}, progress=False)
    row = _mlflow_runs(offline).iloc[0]
    assert row["status"] == "FAILED" and row["tags.ftlab.status"] == "failed"
    assert row["tags.ftlab.run_folder"] == str(e.value.run.path)
    assert mlflow.active_run() is None


def test_the_user_s_mlflow_tracking_uri_wins(offline, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere.resolve().as_uri())
    train(tiny(report_to="mlflow", steps=1), progress=False)
    assert not (offline / "mlruns").exists()
    mlflow.set_tracking_uri(elsewhere.resolve().as_uri())
    assert len(mlflow.search_runs(experiment_names=["ftlab"])) == 1


def test_report_to_changes_the_hash_and_is_not_served_from_a_run_without_it(offline):
    plain = train(tiny(steps=1), progress=False)
    assert tiny().hash() != tiny(report_to="tensorboard").hash()
    again = train(tiny(steps=1, report_to="tensorboard"), progress=False, reuse=True)
    assert not getattr(again, "from_cache", False) and again.run_dir != plain.run_dir
    assert (again.run_dir / "tensorboard").is_dir()


@pytest.mark.parametrize("value", ["wandb", "all", "mlflow,tensorboard", "", None, True])
def test_a_value_not_allowed_is_a_config_error(value):
    with pytest.raises(ConfigError) as e:
        ftlab.RunConfig().replace(**{"train.report_to": value}).validate()
    assert "train.report_to" in str(e.value) and "'tensorboard,mlflow'" in str(e.value)


@pytest.mark.parametrize(("report_to", "package"),
                         [("tensorboard", "tensorboard"), ("mlflow", "mlflow-skinny"),
                          ("tensorboard,mlflow", "tensorboard")])
def test_a_missing_tracker_package_is_said_before_any_model_loads(runs_dir, monkeypatch,
                                                                  report_to, package):
    monkeypatch.setattr(tracking, "_installed", lambda module: False)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("ftlab.engine.supervised.load_model", no_model)
    with pytest.raises(MissingDependencyError) as e:
        train(tiny(report_to=report_to), progress=False)
    assert f"needs the {package} package" in str(e.value)
    assert "pip install 'ftlab[track]'" in str(e.value)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_the_cli_flag_and_set_give_the_knob():
    def parsed(*argv):
        return config_from_args(build_parser().parse_args(["train", *argv]))

    assert parsed("--report-to", "mlflow").train.report_to == "mlflow"
    assert parsed("--set", "train.report_to=tensorboard,mlflow").train.report_to == (
        "tensorboard,mlflow")
    assert parsed().train.report_to == "none"


def test_ftlab_train_set_report_to_writes_tensorboard_files(offline):
    out = run_cli("train", "--model", "tiny", "--preset", "cpu", "--steps", "2", "--size", "16",
                  "--samples", "0", "--set", "train.report_to=tensorboard", "--json",
                  "--runs-dir", str(offline))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    scalars = _tensorboard(load_run(res["run_dir"]).path)
    assert [s for s, _ in scalars["train/loss"]] == [1, 2]
    bad = run_cli("train", "--model", "tiny", "--json", "--set", "train.report_to=wandb")
    assert bad.returncode == 2
    assert "train.report_to = 'wandb' is not allowed" in json.loads(bad.stdout)["error"]


def test_under_torchrun_only_rank_0_reports(tmp_path, monkeypatch):
    from .test_distributed import _config, _finish, _launch, _torchrun

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "TENSORBOARD_LOGGING_DIR"):
        monkeypatch.delenv(var, raising=False)
    config = _config(tmp_path, **{"train.max_steps": 2, "eval.every": 2,
                                  "train.report_to": "tensorboard,mlflow"})
    runs = tmp_path / "runs"
    proc = _launch(_torchrun(2, "train", "--config", str(config), "--json"), runs)
    out, err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    folder = Path(json.loads(out)["run_dir"])
    assert sorted(p.name for p in runs.iterdir()) == sorted([folder.name, "mlruns"])
    assert [s for s, _ in _tensorboard(folder)["train/loss"]] == [1, 2]  # once, not per rank
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # (the reader's opt-in: docs)
    found = _mlflow_runs(runs)
    assert len(found) == 1 and found.iloc[0]["tags.mlflow.runName"] == folder.name
