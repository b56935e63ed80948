"""Widgets for the notebooks: a control panel, a live dashboard, samples, run comparison and
a chat with a model.

Data flows one way: the widgets build a ``RunConfig`` and listen to the events a run
emits; they never reach into the trainer. Every widget also has a programmatic path
(``panel.run(...)``, ``dashboard.show(run)``, ``compare.select(runs)``) so notebooks run
headless under nbval.
"""

from .chat import ChatView
from .compare import CompareView
from .dashboard import Dashboard
from .figures import sync_state
from .panel import ControlPanel
from .samples import SamplesView

__all__ = ["ChatView", "CompareView", "ControlPanel", "Dashboard", "SamplesView", "sync_state"]
