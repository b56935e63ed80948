"""Declared knobs: a config field carries its help text and allowed range in its metadata.

The same metadata validates configs (the error quotes the help), labels widget sliders
and builds the CLI's flags (``argparse_options``: type, choices and help), so the three can
never disagree.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Any, ClassVar

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
    pattern: str | None = None,
    allowed: str | None = None,
) -> Any:
    """A dataclass field with its documentation and allowed values.

    ``pattern`` (a regular expression the whole value must match) with ``allowed`` (how a
    message names the values it matches) declares an open set of strings, such as
    ``cuda:N`` devices. The field's type annotation is checked too (``int | None`` ...).
    """
    meta = {"help": help, "low": low, "high": high, "low_open": low_open,
            "choices": choices, "log": log, "optional": optional, "pattern": pattern,
            "allowed": allowed}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe(meta: dict) -> str:
    """The allowed values of a knob, as a phrase ('a number > 0', 'one of ...')."""
    if meta.get("allowed"):
        return meta["allowed"]
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    lo = None if low is None else (f"> {low}" if meta.get("low_open") else f">= {low}")
    hi = None if high is None else f"<= {high}"
    bounds = " and ".join(b for b in (lo, hi) if b)
    types = _types(meta.get("type", ""))
    if bounds:
        return f"a number {bounds}"
    if types - {"None"} == {"str"}:
        return "a text (str)"
    return "a value of the right type"


# The annotations a knob may carry, and the Python values each one admits.
_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or isinstance(v, float) and v.is_integer(),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "None": lambda v: v is None,
}


def _types(annotation: str) -> set[str]:
    """``"int | None"`` -> ``{"int", "None"}``; empty when the annotation is not a plain one."""
    parts = {p.strip() for p in str(annotation).split("|")}
    return parts if parts and parts <= set(_TYPE_CHECKS) else set()


def _type_phrase(types: set[str]) -> str:
    words = {"int": "a whole number", "float": "a number", "str": "a text (str)",
             "bool": "True or False", "None": "None"}
    return " or ".join(words[t] for t in sorted(types, key=list(words).index))


def _suggest(value: Any, options: list[str]) -> str:
    """' Did you mean 'cpu'?' for a near miss ('CPU', 'lroa'); '' otherwise."""
    if not isinstance(value, str) or not options:
        return ""
    lowered = {o.lower(): o for o in options}
    if value.strip().lower() in lowered:
        return f" Did you mean {lowered[value.strip().lower()]!r}?"
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.75)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def unknown_knob(path: str, value: Any, known: list[str], where: str, fix: str = "",
                 near: list[str] | None = None) -> ConfigError:
    """The one message for a name that is not a knob (``RunConfig(nosuch=1)``, ``--set``,
    ``replace``, a dict from JSON): the name, its value, close matches and the knobs there are.

    ``near`` are further names a typo may be close to (short names of nested knobs).
    """
    name = str(path).rsplit(".", 1)[-1]
    options = [o for o in dict.fromkeys([*known, *(near or [])]) if o != name]
    close = difflib.get_close_matches(name.lower(), options, n=3, cutoff=0.6)
    hint = ("Did you mean " + " or ".join(map(repr, close)) + "? ") if close else ""
    return ConfigError(path, value, f"a knob of {where}: " + (", ".join(known) or "none"),
                       (hint + fix).strip())


class KnobConfig:
    """Base of the config dataclasses: only their own fields may be given.

    A keyword that is not a field (``RunConfig(nosuch=1)``, also through
    ``dataclasses.replace``) is a ``ConfigError`` from ``unknown_knob``, never Python's
    ``TypeError``. The check runs in ``__new__``, so every dataclass subclass has it
    without a decorator and the dataclass itself (fields, ``replace``, ``asdict``) is
    unchanged.
    """

    knob_prefix: ClassVar[str] = ""  # "data." for DataConfig: how its fields are named

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            names = [f.name for f in dataclasses.fields(cls) if f.init]
            if len(args) > len(names):
                raise ConfigError(cls.knob_prefix.rstrip(".") or cls.__name__, args,
                                  f"at most {len(names)} values in order ("
                                  + ", ".join(names) + ")", "Give them by name instead.")
            for key, value in kwargs.items():
                if key not in names:
                    raise cls.unknown_knob(key, value)
        return super().__new__(cls)

    @classmethod
    def unknown_knob(cls, key: str, value: Any) -> ConfigError:
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        where = cls.knob_prefix.rstrip(".") or cls.__name__
        return unknown_knob(f"{cls.knob_prefix}{key}", value, names, where,
                            "Remove it, or use one of these names.")


def check_value(path: str, value: Any, meta: dict, type_name: str = "") -> None:
    """Raise ConfigError if `value` breaks the knob's declared type, range or choices.

    ``type_name`` is the field's annotation (``"int | None"``); ``meta["type"]`` (set by
    ``knobs_of``) is used when it is not given.
    """
    if value is None and meta.get("optional"):
        return
    if type_name:
        meta = {**meta, "type": type_name}
    help_text = meta.get("help", "")
    types = _types(meta.get("type", ""))
    if meta.get("optional"):
        types = types | {"None"} if types else types
    choices = meta.get("choices")
    if choices:
        # `in` alone would let 1 stand for True and 1.0 for 1; the type must match as well.
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ConfigError(path, value, describe(meta),
                              (help_text + _suggest(value, [str(c) for c in choices])).strip())
        return
    if types and not any(_TYPE_CHECKS[t](value) for t in types):
        expected = _type_phrase(types - {"None"} or types)
        bounds = describe(meta)
        if bounds.startswith("a number "):  # "a whole number >= 1 and <= 256"
            expected += bounds.removeprefix("a number")
        raise ConfigError(path, value, expected, help_text)
    if isinstance(value, str) and "\x00" in value:
        raise ConfigError(path, value, "a text without NUL characters", help_text)
    pattern = meta.get("pattern")
    if pattern and value is not None:
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            options = re.findall(r"'([^']*)'", meta.get("allowed") or "")
            raise ConfigError(path, value, describe(meta),
                              (help_text + _suggest(value, options)).strip())
        return
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and math.isnan(value)):
        raise ConfigError(path, value, describe(meta), help_text)
    if "int" in types and "float" not in types and isinstance(value, float) and (
            not value.is_integer()):
        raise ConfigError(path, value, "a whole number", help_text)
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ConfigError(path, value, describe(meta), help_text)


def validate(obj: Any, prefix: str = "") -> None:
    """Check every knob of a dataclass (recursing into nested dataclasses)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
        elif "help" in f.metadata:
            check_value(path, value, f.metadata, _annotation(f))


def _annotation(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def knobs_of(cls_or_obj: Any) -> dict[str, dict]:
    """Name -> metadata (help, range, default, type) of every knob: what widgets build
    sliders from."""
    out = {}
    for f in dataclasses.fields(cls_or_obj):
        if "help" in f.metadata:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = dict(f.metadata, default=default, type=_annotation(f))
    return out


_ARG_TYPES = {"int": int, "float": float, "str": str}


def argparse_options(meta: dict) -> dict[str, Any]:
    """Keywords for ``argparse``'s ``add_argument`` from a knob's metadata (``knobs_of``):
    its type, its choices, and its help with the allowed values, so a flag says what
    validation will check. A True/False knob is a switch (``store_true``)."""
    types = _types(meta.get("type", "")) - {"None"}
    choices = meta.get("choices")
    help_text = meta.get("help", "")
    if types == {"bool"} or (choices and set(choices) == {True, False}):
        return {"action": "store_true", "help": help_text.replace("%", "%%")}
    out: dict[str, Any] = {}
    if choices:
        out["choices"] = list(choices)
    else:
        out["type"] = next((_ARG_TYPES[t] for t in ("float", "int") if t in types), str)
        allowed = describe(meta)
        if out["type"] is int:
            allowed = allowed.replace("a number", "a whole number", 1)
        if meta.get("low") is not None or meta.get("high") is not None or meta.get("allowed"):
            help_text = f"{help_text} Allowed: {allowed}."
    out["help"] = help_text.replace("%", "%%")
    return out
