"""Declared knobs: a config field carries its help text and allowed range in its metadata.

The same metadata validates configs (the error quotes the help), labels widget sliders
and builds the CLI's flags (``argparse_options``: type, choices and help), so the three can
never disagree.

Numbers are decided once, here (``stored``): a whole-number knob given a whole float
(``steps=2.0``) keeps the int, and so names the same run; ``2.5``, ``inf`` and ``True`` are
refused with one message, whichever door (Python, a dict, ``--set``, a flag, the panel).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
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
    file: bool = False,
) -> Any:
    """A dataclass field with its documentation and allowed values.

    ``pattern`` (a regular expression the whole value must match) with ``allowed`` (how a
    message names the values it matches) declares an open set of strings, such as
    ``cuda:N`` devices. ``file=True``: the text may name a file or folder, so a name longer
    than file systems allow is refused here rather than as ``OSError`` where it is opened.
    The field's type annotation is checked too (``int | None`` ...).
    """
    meta = {"help": help, "low": low, "high": high, "low_open": low_open,
            "choices": choices, "log": log, "optional": optional, "pattern": pattern,
            "allowed": allowed, "file": file}
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


# The annotations a knob may carry, and the Python values each one admits. True and False
# are no numbers here, although Python counts them as ints: ``r=True`` is a slip.
_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
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


def _whole_only(annotation: str) -> bool:
    """A knob of whole numbers (``int``, ``int | None``), not one that also takes floats."""
    types = _types(annotation)
    return "int" in types and "float" not in types


def stored(value: Any, annotation: str) -> Any:
    """The value a knob keeps: the one door for numbers given to whole-number knobs.

    A float that is a whole number (``2.0`` from JSON, ``--set``, a division, a slider) is
    that int, so it trains, prints and hashes (the run cache's key) exactly as ``2`` does;
    so is a numpy integer. Anything else is kept as given for ``check_value`` to judge: a
    float with a fraction (``2.5``), ``inf``, ``nan`` and ``True`` are refused there, with
    the same message on every path (Python, dicts, the CLI, the panel).
    """
    if not _whole_only(annotation) or isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)  # (beyond 2**53 no knob's range: 1e300 stays, to be refused as written)
    if isinstance(value, numbers.Integral) and not isinstance(value, int):
        return int(value)
    return value


@functools.cache
def _whole_fields(cls: type) -> frozenset[str]:
    """The fields of a knob dataclass that hold whole numbers (what ``stored`` converts)."""
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if "help" in f.metadata and _whole_only(_annotation(f)))


# Longest name of one file or folder, and of a whole path, in bytes (Linux; macOS and
# Windows allow less in total, and say so themselves).
NAME_MAX, PATH_MAX = 255, 4096


def _file_name_problem(text: str) -> str:
    """What makes ``text`` too long to name a file or folder; '' when it is not."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > PATH_MAX:
        return f"a path of at most {PATH_MAX} bytes (this one has {size})"
    longest = max((len(p.encode("utf-8", "surrogatepass")) for p in re.split(r"[\\/]", text)),
                  default=0)
    if longest > NAME_MAX:
        return (f"a path whose file and folder names have at most {NAME_MAX} bytes each "
                f"(one here has {longest})")
    return ""


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
    if isinstance(path, str) and not name.strip():
        return empty_name(path, value)
    options = [o for o in dict.fromkeys([*known, *(near or [])]) if o != name]
    close = difflib.get_close_matches(name.lower(), options, n=3, cutoff=0.6)
    hint = ("Did you mean " + " or ".join(map(repr, close)) + "? ") if close else ""
    return ConfigError(path, value, f"a knob of {where}: " + (", ".join(known) or "none"),
                       (hint + fix).strip())


def empty_name(path: str, value: Any) -> ConfigError:
    """``replace(**{"": 5})``, ``RunConfig(**{"": 5})``, ``--set =5``: a value with no name.

    The field is shown quoted (``'' = 5``), so the empty name is visible in the message.
    """
    return ConfigError(repr(path), value, "the name of a knob, but the name is empty",
                       "Give it as name=value: config.replace(r=16), or on the command line "
                       "--set name=value (e.g. --set r=16 or --set train.warmup_steps=2).")


class KnobConfig:
    """Base of the config dataclasses: only their own fields may be given.

    A keyword that is not a field (``RunConfig(nosuch=1)``, also through
    ``dataclasses.replace``) is a ``ConfigError`` from ``unknown_knob``, never Python's
    ``TypeError``. The check runs in ``__new__``, so every dataclass subclass has it
    without a decorator and the dataclass itself (fields, ``replace``, ``asdict``) is
    unchanged.

    Every assignment to a whole-number knob passes ``stored`` (in ``__setattr__``, which the
    dataclass's ``__init__`` also uses), so ``steps=2.0`` is kept as ``2`` however it came.
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

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _whole_fields(type(self)):
            value = stored(value, "int")
        super().__setattr__(name, value)

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
    if meta.get("file") and isinstance(value, str) and _file_name_problem(value):
        raise ConfigError(path, value, _file_name_problem(value),
                          "No file system has names this long: give a shorter path or name.")
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
    # (value != value: NaN, of any float type; math.isnan would overflow on a 400-digit int)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ConfigError(path, value, describe(meta), help_text)
    if "int" in types and "float" not in types and isinstance(value, float) and (
            not value.is_integer()):
        raise ConfigError(path, value, "a whole number", help_text)
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise ConfigError(path, value, describe(meta), help_text)


def validate(obj: Any, prefix: str = "") -> None:
    """Check every knob of a dataclass (recursing into nested dataclasses).

    A whole number given as a float is stored as its int here too (``stored``), for the
    knob dataclasses that are no ``KnobConfig`` (``RewardModelConfig``).
    """
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
        elif "help" in f.metadata:
            check_value(path, value, f.metadata, _annotation(f))
            kept = stored(value, _annotation(f))
            if kept is not value:
                object.__setattr__(obj, f.name, kept)


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
