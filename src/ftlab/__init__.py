"""ftlab: learn how language models are fine-tuned by doing it for real."""

import logging

from . import threads

# Thread count and OpenMP wait policy from the CPUs this process may use; OpenMP reads its
# settings when torch loads it, so this runs before anything imports torch (ftlab.threads).
threads.configure()
threads.start_sharing()

# bitsandbytes tries to fetch an optional CPU kernel from a model hub at import and warns
# when it cannot; ftlab never downloads at run time and the built-in kernel works.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .config import PRESETS, DataConfig, EvalConfig, RunConfig, TrainConfig
from .engine import StopFlag, TrainResult, train
from .errors import (
    ConfigError,
    DatasetError,
    DoesNotFitError,
    FtlabError,
    MissingDependencyError,
    ModelNotFoundError,
    TrainingError,
)
from .methods import (
    METHODS,
    FullFinetune,
    Lora,
    MethodConfig,
    PrefixTuning,
    PromptTuning,
    QLora,
    apply_method,
    method_config,
    param_report,
)
from .models import DEFAULT_MODEL, load_model
from .version import __version__ as __version__  # noqa: E402

_SUBMODULES = {"evaluate", "rlhf", "widgets", "runs", "data", "generation"}


def __getattr__(name: str):
    """``ftlab.evaluate``, ``ftlab.rlhf``, ``ftlab.widgets``: imported on first use (TRL and
    the widget stack are slow to import and a CLI call rarely needs them)."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DEFAULT_MODEL", "METHODS", "PRESETS", "ConfigError", "DataConfig", "DatasetError",
    "DoesNotFitError", "EvalConfig", "FtlabError", "FullFinetune", "Lora", "MethodConfig",
    "MissingDependencyError", "ModelNotFoundError", "PrefixTuning", "PromptTuning", "QLora",
    "RunConfig", "StopFlag", "TrainConfig", "TrainResult", "TrainingError", "apply_method",
    "load_model", "method_config", "param_report", "train",
]
