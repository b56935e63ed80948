"""Labs: one small module per failure mode, each a set of declarations on ``Lab``.

A lab declares per preset its base, arms, checked and extra arms and watched evaluators
(``Preset``); ``lab.panel()`` for the notebook's controls, ``lab.run(arm, seed)`` and
``lab.sweep(seeds)`` for cached runs, ``result.check()`` for the lesson as a verdict.
Each lab's figures and tables live in ``show_<lab>.py``, written by one ``rows_html``.
"""

from .base import Lab, LabResult, Preset, Verdict, rows_html

__all__ = ["Lab", "LabResult", "Preset", "Verdict", "rows_html"]
