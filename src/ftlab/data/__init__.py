"""Task data: generated tasks, user JSONL files, and the formats that turn chats into tokens."""

from .formats import FORMATS, IGNORE_INDEX, corrupt_formats, encode
from .jsonl import read_jsonl
from .pairs import pairs_to_unpaired, read_pairs, read_unpaired
from .splits import load_splits
from .tasks import TASKS, Splits, Task, make_task, task_for

__all__ = ["FORMATS", "IGNORE_INDEX", "TASKS", "Splits", "Task", "corrupt_formats", "encode",
           "load_splits", "make_task", "pairs_to_unpaired", "read_jsonl", "read_pairs",
           "read_unpaired", "task_for"]
