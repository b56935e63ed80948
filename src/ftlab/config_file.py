"""A run config as a file: JSON always, YAML for ``.yaml`` / ``.yml``.

Only the text is handled here (reading, parsing, writing); what the mapping means is judged
by ``RunConfig.from_dict`` and the knobs, the one door every value passes, so a file can
never hold a config that ``replace`` or ``--set`` would refuse. A run folder's
``config.json`` is one such file, and a run folder stands for it.

YAML is read as YAML 1.2 reads numbers (``1e-3`` is a float, not PyYAML's string) and
written with the same rule, so a string that looks like a number stays quoted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, ConfigFileError

YAML_SUFFIXES = (".yaml", ".yml")
SUFFIXES = (".json", *YAML_SUFFIXES)
RUN_FOLDER_FILE = "config.json"  # what a run folder keeps its config in (ftlab.runs)

_REWRITE = "Correct the file, or write it again with RunConfig.save(path)."


def read_config_file(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """The mapping a config file holds, and the file it came from (a run folder's
    ``config.json`` when ``path`` is a run folder). Every problem is a ``ConfigFileError``
    naming the file."""
    p = _as_path(path)
    try:
        folder = p.is_dir()
        if folder and (p / RUN_FOLDER_FILE).is_file():
            p, folder = p / RUN_FOLDER_FILE, False
        raw = b"" if folder else p.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(p, "no such file", "Check the path; RunConfig(...).save(path) "
                              "writes a config file, and every run folder holds one "
                              f"({RUN_FOLDER_FILE}).") from None
    except (OSError, ValueError) as e:  # (ValueError: a NUL in the path)
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise ConfigFileError(p, f"cannot be read ({why})",
                              "Check the path and its permissions.") from None
    if folder:
        raise ConfigFileError(p, f"is a folder without a {RUN_FOLDER_FILE}",
                              "Give a config file (.json, .yaml or .yml, as RunConfig.save "
                              "writes) or a run folder.")
    try:
        text = raw.decode("utf-8-sig")  # (a byte-order mark, as some Windows editors write)
    except UnicodeDecodeError as e:
        raise ConfigFileError(p, f"is not UTF-8 text (byte {e.start} cannot be decoded)",
                              "Save it as UTF-8 text.") from None
    is_yaml = p.suffix.lower() in YAML_SUFFIXES
    data = _parse_yaml(p, text) if is_yaml else _parse_json(p, text)
    if not isinstance(data, dict):
        what = ("nothing (it is empty)" if not text.strip() else "nothing" if data is None
                else f"a {type(data).__name__}")
        raise ConfigFileError(p, f"holds {what}, not a mapping of RunConfig's fields "
                              "(model, method, data, train, eval, seed, ...)",
                              "Write the config as a mapping, e.g. RunConfig().save(path) "
                              "gives a complete one; fields left out keep their defaults.")
    return data, p


def write_config_file(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``data`` as JSON or YAML (by the suffix), atomically: a reader sees the old file
    or the new one, never half. Returns the path written."""
    p = _as_path(path)
    if p.suffix.lower() not in SUFFIXES:
        has = f"has the suffix {p.suffix!r}" if p.suffix else "has no suffix"
        raise ConfigFileError(p, f"{has}, and the suffix chooses the format",
                              "End the file name with .json, .yaml or .yml.")
    if p.suffix.lower() in YAML_SUFFIXES:
        text = _yaml().dump(data, Dumper=_yaml_classes()[1], sort_keys=False,
                            allow_unicode=True, default_flow_style=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        if p.is_dir():
            raise IsADirectoryError(21, "a folder")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except (OSError, ValueError) as e:  # (ValueError: a NUL in the path)
        with contextlib.suppress(OSError, ValueError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, IsADirectoryError):
            raise ConfigFileError(p, "is a folder", "Give the name of a file to write the "
                                  "config to (a run folder's config.json is its run's).") from None
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise ConfigFileError(p, f"cannot be written ({why})",
                              "Choose a file name in a folder you may write to.") from None
    return p


def _as_path(path: Any) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise ConfigError("path", path, "a file path (a str or a pathlib.Path)",
                          "e.g. RunConfig.from_file('run.yaml').")
    if not str(path).strip():
        raise ConfigError("path", path, "a file path, but it is empty",
                          "e.g. RunConfig.from_file('run.yaml').")
    return Path(path)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that names a key twice: JSON keeps the last silently; we say so."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _parse_json(p: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise ConfigFileError(p, f"is not valid JSON ({e.msg})", _REWRITE, line=e.lineno,
                              column=e.colno) from None
    except _DuplicateKey as e:
        raise ConfigFileError(p, f"names the key {e.args[0]!r} twice in one object",
                              "Keep one of them.") from None
    except (ValueError, RecursionError) as e:  # a 5000-digit number, 100 000 nested lists
        raise ConfigFileError(p, f"is not a JSON file ftlab can read ({type(e).__name__}: "
                              f"{str(e)[:80]})", _REWRITE) from None


def _parse_yaml(p: Path, text: str) -> Any:
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_yaml_classes()[0])  # a SafeLoader: no Python objects
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(str(e.problem or e.context or "a syntax error").split())
        raise ConfigFileError(p, f"is not valid YAML ({problem})", _REWRITE,
                              line=mark.line + 1 if mark else None,
                              column=mark.column + 1 if mark else None) from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise ConfigFileError(p, f"is not a YAML file ftlab can read ({type(e).__name__}: "
                              f"{str(e)[:80]})", _REWRITE) from None


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        from .errors import MissingDependencyError

        raise MissingDependencyError("Reading and writing YAML config files needs PyYAML: "
                                     "pip install pyyaml (or use a .json file).") from None
    return yaml


# A float written with an exponent and no point (1e-3, 5E+4): YAML 1.2 reads a float,
# PyYAML (YAML 1.1) a string. Learning rates are written this way.
_EXPONENT_FLOAT = r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"


@functools.cache
def _yaml_classes() -> tuple[type, type]:
    """(Loader, Dumper): PyYAML's safe ones, with exponent floats, and duplicate keys refused."""
    import re

    yaml = _yaml()

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict:
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping", node.start_mark,
                            f"the key {key_node.value!r} is given twice; keep one",
                            key_node.start_mark)
                    seen.add(key_node.value)
            return super().construct_mapping(node, deep=deep)

    class Dumper(yaml.SafeDumper):
        pass

    for cls in (Loader, Dumper):
        cls.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_EXPONENT_FLOAT),
                                  list("-+0123456789"))
    return Loader, Dumper
