"""Labs: one small module per failure mode, each a set of declarations on ``Lab``.

``lab.panel()`` for the notebook's controls, ``lab.run(arm, seed)`` and
``lab.sweep(seeds)`` for cached runs, ``result.check()`` for the lesson as a verdict.
"""

from .base import Lab, LabResult, Verdict

__all__ = ["Lab", "LabResult", "Verdict"]
