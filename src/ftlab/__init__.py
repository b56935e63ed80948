"""ftlab: learn how language models are fine-tuned by doing it for real."""

import logging

# bitsandbytes tries to fetch an optional CPU kernel from a model hub at import and warns
# when it cannot; ftlab never downloads at run time and the built-in kernel works.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .config import PRESETS, DataConfig, EvalConfig, RunConfig, TrainConfig
from .errors import (
    ConfigError,
    DatasetError,
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "METHODS", "PRESETS", "ConfigError", "DataConfig", "DatasetError",
    "EvalConfig", "FtlabError", "FullFinetune", "Lora", "MethodConfig",
    "MissingDependencyError", "ModelNotFoundError", "PrefixTuning", "PromptTuning", "QLora",
    "RunConfig", "TrainConfig", "TrainingError", "apply_method", "load_model", "method_config",
    "param_report",
]
