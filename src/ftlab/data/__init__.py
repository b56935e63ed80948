"""Task data: generated tasks, user JSONL files, and the formats that turn chats into tokens."""

from .formats import FORMATS, IGNORE_INDEX, corrupt_formats, encode
from .jsonl import read_jsonl
from .splits import load_splits
from .tasks import TASKS, Splits, Task, make_task, task_for

__all__ = ["FORMATS", "IGNORE_INDEX", "TASKS", "Splits", "Task", "corrupt_formats", "encode",
           "load_splits", "make_task", "read_jsonl", "task_for"]
