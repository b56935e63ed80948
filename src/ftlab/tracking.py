"""Experiment trackers (``train.report_to``): the trainer's logs, also in TensorBoard or MLflow.

transformers' own callbacks (``TensorBoardCallback``, ``MLflowCallback``) do the reporting;
``trainer_arguments`` passes ``report_to`` through. What ftlab adds here is where they write,
so that nothing leaves the machine and a run is found from its folder:

- TensorBoard: event files in ``<run folder>/tensorboard/`` (``TENSORBOARD_LOGGING_DIR``
  wins when it is set). ``tensorboard --logdir runs/`` shows every run by its folder name.
- MLflow: ``MLFLOW_TRACKING_URI`` when it is set, else a file store beside the run folders
  (``file:<runs root>/mlruns``); experiment ``ftlab`` (``MLFLOW_EXPERIMENT_NAME`` wins), one
  MLflow run per ftlab run, named as its folder and tagged with its path and status. MLflow's
  telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``, unless it is set) before MLflow is
  first imported, and the file store, which MLflow 3 keeps in maintenance mode, is opted in
  (``MLFLOW_ALLOW_FILE_STORE``, unless it is set).

ftlab starts and ends the MLflow run itself (around ``part.run``), so the evaluation after
``train()`` lands in the same MLflow run and a failed or interrupted run is marked so.
Only rank 0 reports under a launcher: the callbacks check ``is_world_process_zero`` and
ftlab starts no MLflow run on the other ranks. The run folder stays the record: nothing in
ftlab reads a tracker back.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

from .errors import MissingDependencyError

__all__ = ["Trackers", "check_installed", "mlflow_uri", "trackers"]

# tracker -> (the module it needs, the package that provides it)
NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}
EXPERIMENT = "ftlab"
# ftlab's ending -> MLflow's run status
_MLFLOW_STATUS = {"completed": "FINISHED", "early_stopped": "FINISHED", "stopped": "FINISHED",
                  "failed": "FAILED", "interrupted": "KILLED"}


def trackers(report_to: str) -> list[str]:
    """``"tensorboard,mlflow"`` -> ``["tensorboard", "mlflow"]``; ``"none"`` -> ``[]``."""
    return [] if report_to in (None, "none") else [t.strip() for t in report_to.split(",")]


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (the seam the tests replace)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_installed(report_to: str) -> None:
    """A ``MissingDependencyError`` for a tracker whose package is missing: said before any
    model loads, with the command that installs it."""
    for name in trackers(report_to):
        module, package = NEEDS[name]
        if not _installed(module):
            raise MissingDependencyError(
                f"train.report_to = {report_to!r} needs the {package} package, which is not "
                f"installed. Install the trackers with: pip install 'ftlab[track]' (or pip "
                f"install {package}), or set train.report_to to 'none'.")


def mlflow_uri(runs_root: Path) -> str:
    """Where MLflow writes: ``MLFLOW_TRACKING_URI``, else a file store under the runs root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (Path(runs_root) / "mlruns").resolve().as_uri()


class Trackers:
    """The trackers of one run: pointed at their files before training, closed after it."""

    def __init__(self, report_to: str, run_dir: Path, main: bool = True) -> None:
        self.names, self.run_dir, self.main = trackers(report_to), Path(run_dir), main
        self.trainer = None
        self._mlflow_run = None
        if "mlflow" in self.names:  # before the Trainer's MLflowCallback imports mlflow
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            if mlflow_uri(self.run_dir.parent).startswith("file:"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

    def start(self, trainer) -> None:
        """Point the trainer's tracker callbacks at the run's files; start its MLflow run."""
        self.trainer = trainer
        if not self.names or not self.main:
            return
        from transformers.integrations import TensorBoardCallback

        for cb in trainer.callback_handler.callbacks:
            if isinstance(cb, TensorBoardCallback) and not os.environ.get(
                    "TENSORBOARD_LOGGING_DIR"):
                cb.logging_dir = str(self.run_dir / "tensorboard")
        if "mlflow" in self.names:
            import mlflow

            mlflow.set_tracking_uri(mlflow_uri(self.run_dir.parent))
            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT)
            # the callback sees an active run: it logs into it and leaves ending it to us
            self._mlflow_run = mlflow.start_run(
                run_name=self.run_dir.name, tags={"ftlab.run_folder": str(self.run_dir)},
                nested=mlflow.active_run() is not None)  # inside a notebook's own run

    def end(self, status: str) -> None:
        """Close the TensorBoard writers and end the MLflow run with the run's status. A
        tracker that fails here is a warning: the run itself is recorded in its folder."""
        try:
            self._end(status)
        except Exception as e:  # noqa: BLE001 - a tracker's problem never fails a run
            warnings.warn(f"train.report_to: closing the trackers failed ({type(e).__name__}: "
                          f"{e}); the run folder {self.run_dir} has the whole run.",
                          RuntimeWarning, stacklevel=2)

    def _end(self, status: str) -> None:
        if self.trainer is not None:
            from transformers.integrations import TensorBoardCallback

            for cb in self.trainer.callback_handler.callbacks:
                if isinstance(cb, TensorBoardCallback) and cb.tb_writer is not None:
                    cb.tb_writer.close()  # (an evaluation after train() opened it again)
                    cb.tb_writer = None
        if self._mlflow_run is not None:
            import mlflow

            run, self._mlflow_run = self._mlflow_run, None
            active = mlflow.active_run()
            if active is not None and active.info.run_id == run.info.run_id:
                mlflow.set_tag("ftlab.status", status)
                mlflow.end_run(status=_MLFLOW_STATUS.get(status, "FINISHED"))
