"""Exercises for the notebooks: checks of the learner's own functions, concept checks,
predictions, and the student version (built and graded with nbgrader).

In a notebook::

    from ftlab.exercises import check
    check("21.1", encode_chat)      # ✓ ... or feedback: the case, expected, a hint

Every graded function is compared with ftlab's own implementation of the same notion on
hand-made and random cases (see ``labs.py`` and ``methods.py``). ``concepts`` and ``predict``
answer in place and are never graded. ``python -m ftlab.exercises student OUT`` builds the
student version; ``python -m ftlab.exercises grade NOTEBOOK`` grades one submission.
"""

from __future__ import annotations

from . import labs, methods
from .concepts import concepts, predict
from .core import CheckFailed

CHECKS = {
    "00.1": methods.check_lora_count,
    "10.1": methods.check_answer_loss, "10.2": methods.check_adam_update,
    "11.1": methods.check_lora_delta, "11.2": methods.check_lora_forward,
    "12.1": methods.check_nf4, "12.2": methods.check_bits_per_weight,
    "13.1": methods.check_prefix_numbers,
    "14.1": methods.check_prompt_numbers, "14.2": methods.check_nearest_words,
    "15.1": methods.check_training_bytes, "15.2": methods.check_fits,
    "20.2": labs.check_early_stop, "20.3": labs.check_min_delta_stop,
    "21.1": labs.check_encode_chat, "21.3": labs.check_lint_rows,
    "22.1": labs.check_paired_interval, "22.2": labs.check_collapse_alarm,
    "23.1": labs.check_gold, "23.2": labs.check_fair_reward,
    "24.1": labs.check_wilson, "24.2": labs.check_change_verdict,
}


def check(exercise: str, fn) -> None:
    """Check the learner's function for ``exercise``: prints ✓, or raises CheckFailed with
    feedback (shown without a traceback; a grader counts it as zero points)."""
    if exercise not in CHECKS:
        raise KeyError(f"no exercise {exercise!r}; known: {', '.join(CHECKS)}")
    CHECKS[exercise](fn)


replay_early_stop = labs.replay_early_stop

__all__ = ["CHECKS", "CheckFailed", "check", "concepts", "predict", "replay_early_stop"]
