"""Declared knobs: a config field carries its help text and allowed range in its metadata.

The same metadata validates configs (the error quotes the help), labels widget sliders
and documents the CLI, so the three can never disagree.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .errors import ConfigError


def knob(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple | None = None,
    log: bool = False,
    optional: bool = False,
) -> Any:
    """A dataclass field with its documentation and allowed values."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open,
            "choices": choices, "log": log, "optional": optional}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe(meta: dict) -> str:
    """The allowed values of a knob, as a phrase ('a number > 0', 'one of ...')."""
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    lo = None if low is None else (f"> {low}" if meta.get("low_open") else f">= {low}")
    hi = None if high is None else f"<= {high}"
    bounds = " and ".join(b for b in (lo, hi) if b)
    return f"a number {bounds}" if bounds else "a value of the right type"


def check_value(path: str, value: Any, meta: dict, type_name: str = "") -> None:
    """Raise ConfigError if `value` breaks the knob's declared range or choices."""
    if value is None and meta.get("optional"):
        return
    choices = meta.get("choices")
    if choices:
        if value not in choices:
            raise ConfigError(path, value, describe(meta), meta.get("help", ""))
        return
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(path, value, describe(meta), meta.get("help", ""))
    if type_name == "int" and not float(value).is_integer():
        raise ConfigError(path, value, "a whole number", meta.get("help", ""))
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ConfigError(path, value, describe(meta), meta.get("help", ""))


def validate(obj: Any, prefix: str = "") -> None:
    """Check every knob of a dataclass (recursing into nested dataclasses)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
        elif "help" in f.metadata:
            type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            check_value(path, value, f.metadata, type_name.split("|")[0].strip())


def knobs_of(cls_or_obj: Any) -> dict[str, dict]:
    """Name -> metadata (help, range, default) of every knob: what widgets build sliders from."""
    out = {}
    for f in dataclasses.fields(cls_or_obj):
        if "help" in f.metadata:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = dict(f.metadata, default=default)
    return out
