"""Evaluators: validation loss, task score, format validity, instruction probes, the broad
benchmark and fixed samples. Each returns an ``EvalResult`` (score in 0..1, n, breakdown)."""

from .benchmark import run_benchmark
from .checks import CHECKERS, STRAY_MARKERS, check_instruction, stray_markers
from .format import check_format, format_validity
from .loss import validation_loss
from .probes import run_probes
from .result import EvalResult, wilson_interval
from .samples import sample_answers
from .suite import SUITE_PRESETS, SUITES, SuiteEvaluator, evaluator, run_suite
from .task import score_answer, task_score

__all__ = [
    "CHECKERS", "STRAY_MARKERS", "SUITES", "SUITE_PRESETS", "EvalResult", "SuiteEvaluator",
    "check_format", "evaluator",
    "check_instruction", "format_validity", "run_benchmark", "run_probes", "run_suite",
    "sample_answers", "score_answer", "stray_markers", "task_score", "validation_loss",
    "wilson_interval",
]
