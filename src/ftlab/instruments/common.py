"""Shared by the method notebooks: who trains what, answers before and after, small sweeps."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from typing import Any

from ..config import RunConfig
from ..generation import generate_answers
from ..methods import ParamReport, label_of, param_report
from ..runs import Run


def param_table(configs: dict[str, RunConfig]) -> dict[str, ParamReport]:
    """Build each config's model (no training) and count what it would train.

    ``configs``: name -> config, e.g. ``{arm: lab.config(arm) for arm in lab.arms}``. Each
    model is freed before the next is built, so only one is in memory at a time.
    """
    from ..engine import build_model

    out = {}
    for name, cfg in configs.items():
        model, _ = build_model(cfg.resolved())
        out[name] = param_report(model, cfg.method.name)
        del model
        gc.collect()
    return out


def param_rows(reports: dict[str, ParamReport]) -> list[dict]:
    """Rows for display: method, trainable, total, share (%)."""
    return [{"method": label_of(n), "trainable": f"{r.trainable:,}",
             "total": f"{r.total:,}", "trained share (%)": round(r.percent, 4)}
            for n, r in reports.items()]


def show_rows(rows: Sequence[dict]):
    """A list of dicts as an HTML table (pandas-free)."""
    import html

    from IPython.display import HTML

    cols = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{html.escape(_fmt(r[c]))}"
                                    "</td>" for c in cols) + "</tr>" for r in rows)
    return HTML(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def before_after(model, tok, rows: Sequence[dict], max_new_tokens: int = 48):
    """The same held-out questions answered by the base (adapter off) and the trained model,
    shown in a ``SamplesView`` (before | after). Returns the view; ``view.rows`` has the
    texts."""
    from ..widgets import SamplesView

    chats = [r["messages"] for r in rows]
    with model.disable_adapter():
        base = generate_answers(model, tok, chats, max_new_tokens=max_new_tokens)
    trained = generate_answers(model, tok, chats, max_new_tokens=max_new_tokens)

    def record(step: int, answers) -> dict:
        return {"kind": "samples", "step": step, "samples": [
            {"question": r["messages"][-2]["content"], "expected": r["meta"]["answer"],
             "answer": a.text, "stopped": a.stopped} for r, a in zip(rows, answers)]}

    view = SamplesView(max_chars=160)
    view.on_event({"kind": "start"})
    view.on_event(record(0, base))
    view.on_event(record(-1, trained))
    return view


def sweep(base: RunConfig, knob: str, values: Iterable[Any], *, runs_dir=None,
          progress: bool = True, **changes: Any) -> dict[Any, Run]:
    """One run per value of ``knob`` (cached: an identical earlier run is loaded), with
    validation loss only (no generation), so a sweep stays cheap. ``changes`` apply to all."""
    return train_each({v: base.replace(**{**changes, knob: v}) for v in values},
                      f"sweep over {knob}", runs_dir=runs_dir, progress=progress)


def train_each(configs: dict[Any, RunConfig], desc: str, *, runs_dir=None,
               progress: bool = True) -> dict[Any, Run]:
    """A run of each config, under the same key, one at a time (cached: an identical earlier
    run, one of these included, is loaded; its model is dropped to keep one in memory)."""
    from tqdm.auto import tqdm

    from ..engine import train

    out = {}
    for key, cfg in tqdm(configs.items(), desc=desc, unit="run", disable=not progress):
        out[key] = train(cfg, runs_dir=runs_dir, progress=False, reuse=True)
        out[key].model = None
        gc.collect()
    return out


def val_drop(run: Run) -> float:
    """Relative fall of the validation loss from the first to the final evaluation."""
    f = run.final
    return 1 - f["final_val_loss"] / f["first_val_loss"]
