"""Scores of an unchanged model, kept on disk: the base model is measured once per machine.

Evaluation, not training, is most of a lab's time on a CPU, and every notebook's "before"
is the same base model on the same items. A score is stored under a key made of the
model, dtype, device kind, the suite and its items, and ftlab's version, so anything that
changes the number changes the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields

from ..digest import digest
from ..runs import write_json
from .result import EvalResult


def base_model_key(cfg, **what) -> dict:
    """What decides an untrained model's score: the model and the items it is scored on."""
    from ..models import choose_placement
    from ..runs import code_version

    placement = choose_placement(cfg.device, cfg.dtype)
    rows = what.pop("rows", None)
    items = None if rows is None else digest(rows, 64)
    return {"model": cfg.model, "dtype": placement.dtype_name, "device": placement.device,
            "items": items, "ftlab": code_version(), **what}


def evals_dir():
    """Where the scores live: ``evals/`` in ftlab's cache (``FTLAB_CACHE``)."""
    from ..models import cache_dir

    return cache_dir() / "evals"


def _path(key: dict):
    return evals_dir() / f"{digest(key, 24)}.json"


def cached_result(key: dict, compute: Callable[[], EvalResult]) -> EvalResult:
    """The stored result for ``key``, or ``compute()`` stored for next time."""
    path = _path(key)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            data = stored["result"]
            names = {f.name for f in fields(EvalResult)}
            result = EvalResult(**{k: v for k, v in data.items() if k in names})
            result.extra["cached"] = True
            return result
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable: measure again
    result = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"key": key, "result": result.to_dict()})
    except OSError:
        pass  # a read-only cache only costs time
    return result


def base_scored(ctx, compute: Callable[[], EvalResult], **what) -> EvalResult:
    """``compute()`` for an evaluator; while the model is still the base model (step 0 of a
    method that starts as it), from the disk cache under ``base_model_key(**what)``."""
    if ctx.step != 0 or not ctx.config.method.starts_as_base:
        return compute()
    return cached_result(base_model_key(ctx.config, **what), compute)
