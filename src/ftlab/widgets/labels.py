"""The names a learner reads for the numbers a panel plots and quotes.

A run's metrics are namespaced for code (``heldout.gold``, ``rl.kl_measured``); legends
and status lines use these names instead, the words the notebooks and the lab figures use
("sampled, each step" and "held-out, greedy" as in ``show_reward_hacking``). Short enough
to fit a legend beside its panel. One table for every panel: the same metric
(``probes.live``) is plotted by two labs.
"""

from __future__ import annotations

# metric -> (the name a learner reads, whether it is a share or score in [0, 1])
METRICS: dict[str, tuple[str, bool]] = {
    "train loss": ("training loss", False),
    "val loss": ("validation loss", False),
    "best": ("lowest validation loss", False),
    "rl.proxy": ("proxy · sampled, each step", False),
    "rl.gold": ("gold · sampled, each step", True),
    "rl.length": ("words · sampled, each step", False),
    "rl.kl_measured": ("KL · measured, each step", False),
    "heldout.gold": ("gold · held-out, greedy", True),
    "heldout.proxy": ("proxy · held-out, greedy", False),
    "heldout.words": ("words · held-out, greedy", False),
    "probes.live": ("probe pass rate (live subset)", True),
    "probes.live_training_form": ("training-form answers (live subset)", True),
    "format.score": ("format validity", True),
    "format.stops": ("answers that stop", True),
    "format.clean": ("answers free of stray markers", True),
    "task.score": ("task score (held-out rows)", True),
    "bench.score": ("benchmark score", True),
    "memo.train_verbatim": ("training answers, verbatim", True),
    "memo.heldout_correct": ("held-out answers right", True),
}


def metric_label(name: str) -> str:
    """What a legend or status line calls ``name`` (the name itself when none is set)."""
    return METRICS.get(name, (name, False))[0]


def is_share(name: str) -> bool:
    """Is ``name`` a share or score in [0, 1] (its axis then spans exactly that)?"""
    return METRICS.get(name, (name, False))[1]
