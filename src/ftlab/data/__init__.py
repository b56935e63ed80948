"""Task data: generated tasks, user JSONL files, and the formats that turn chats into tokens."""

from .formats import FORMATS, IGNORE_INDEX, corrupt_formats, encode
from .jsonl import read_jsonl
from .tasks import TASKS, Splits, make_task

__all__ = ["FORMATS", "IGNORE_INDEX", "TASKS", "Splits", "corrupt_formats", "encode",
           "make_task", "read_jsonl"]
