"""Samples view: the base model's answers (step 0) and the trained model's, each beside its
own question.

Loss curves say *that* something changed; the answers show *what*. The view listens to
``SamplesLogged`` events: the first one of a run (step 0, the base model) is "before", the
latest one "after". A supervised run samples the same validation prompts each time, so the
two stand side by side, matched by question. A policy (RL) run samples new training
questions at every step: its before and after are listed one under the other, each answer
on its own question's row, never paired by position.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from .dashboard import as_dict

_CSS = ("<style>.ftlab-samples td,.ftlab-samples th{vertical-align:top;padding:4px 8px;"
        "text-align:left;border-bottom:1px solid #ddd;font-size:13px;max-width:260px;"
        "white-space:pre-wrap;overflow-wrap:break-word;word-break:normal}"
        ".ftlab-samples .bad{color:#b00}.ftlab-samples .ok{color:#070}</style>")
SCORES = ("words", "proxy", "gold")  # what a policy run scores each sampled answer with


class SamplesView:
    """An HTML table of sampled answers: question, expected answer, before, after.

    ``kept``: how many samples a run keeps (``eval.samples``; read again from each run's
    start): with 0 the view says that none will come instead of promising them."""

    def __init__(self, max_chars: int = 240, kept: int | None = None) -> None:
        self.max_chars = max_chars
        self.kept = kept
        self.before: dict | None = None
        self.after: dict | None = None
        self.widget = w.HTML(value=self._render())

    def on_event(self, event: Any) -> None:
        """Listener for ``train(on_event=...)``."""
        e = as_dict(event)
        if e.get("kind") == "start":
            self.before = self.after = None
            self.kept = ((e.get("config") or {}).get("eval") or {}).get("samples", self.kept)
        elif e.get("kind") == "samples":
            if self.before is None:
                self.before = e
            else:
                self.after = e
        else:
            return
        self.widget.value = self._render()

    def show(self, run: Any) -> SamplesView:
        """Show a finished ``Run`` (live from ``train()`` or read back from its folder)."""
        self.before = self.after = None
        self.kept = run.config.eval.samples
        for record in run.samples:
            self.on_event(record)
        return self

    @property
    def paired(self) -> bool:
        """Were before and after asked the same questions (a supervised run)?"""
        questions = {s["question"] for s in (self.before or {}).get("samples", [])}
        return all(s["question"] in questions for s in (self.after or {}).get("samples", []))

    @property
    def rows(self) -> list[dict]:
        """``[{"question", "expected", "before", "after"}]``: each answer on its own question's
        row (after is None until a later sample of that question arrives)."""
        after = {s["question"]: s for s in (self.after or {}).get("samples", [])}
        return [{"question": b["question"], "expected": b["expected"], "before": b["answer"],
                 "after": after[b["question"]]["answer"] if b["question"] in after else None}
                for b in (self.before or {}).get("samples", [])]

    def _cell(self, sample: dict | None) -> str:
        if sample is None:
            return "<td><i>…</i></td>"
        text = sample["answer"]
        shown = text if len(text) <= self.max_chars else text[: self.max_chars] + "…"
        stop = ("" if sample.get("stopped", True)
                else " <span class='bad' title='did not emit an end-of-turn token'>"
                "[no stop]</span>")
        mark = "ok" if str(sample["expected"]).strip() in text else ""
        return f"<td class='{mark}'>{html.escape(shown)}{stop}</td>"

    def _render(self) -> str:
        if self.before is None:
            text = ("No samples in this run: <code>eval.samples</code> is 0 (the preset keeps "
                    "none, to save time). Set it above 0 to see answers here."
                    if self.kept == 0 else "Samples appear here: the base model's answers at "
                    "step 0, then the trained model's.")
            return f"<div class='ftlab-samples'><i>{text}</i></div>"
        body = self._side_by_side() if self.paired else self._one_under_the_other()
        return f"{_CSS}{body}"

    def _side_by_side(self) -> str:
        after_step = f"(step {self.after['step']})" if self.after else ""
        head = ("<tr><th>question</th><th>expected</th><th>before (step "
                f"{self.before['step']})</th><th>after {after_step}</th></tr>")
        after = {s["question"]: s for s in (self.after or {}).get("samples", [])}
        body = "".join(
            f"<tr><td>{html.escape(s['question'])}</td><td>{html.escape(str(s['expected']))}</td>"
            f"{self._cell(s)}{self._cell(after.get(s['question']))}</tr>"
            for s in self.before["samples"])
        return (f"<p><b>Samples</b>: the same validation prompts, answered by the base model "
                f"(before) and the trained one (after).</p><table class='ftlab-samples'>"
                f"{head}{body}</table>")

    def _one_under_the_other(self) -> str:
        logged = [("before", self.before), ("after", self.after)]
        scores = [k for k in SCORES if all(k in s for _, e in logged for s in e["samples"])]
        head = ("<tr><th>step</th><th>question</th><th>expected</th><th>answer</th>"
                + "".join(f"<th>{k}</th>" for k in scores) + "</tr>")
        body = "".join(
            f"<tr><td>{e['step']} ({when})</td><td>{html.escape(s['question'])}</td>"
            f"<td>{html.escape(str(s['expected']))}</td>{self._cell(s)}"
            + "".join(f"<td>{s[k]:.3g}</td>" for k in scores) + "</tr>"
            for when, e in logged for s in e["samples"])
        return ("<p><b>Samples</b>: a policy run answers different training questions at "
                "every step, so each answer is shown on its own question's row: the base "
                "model's (before) and the trained policy's (after).</p>"
                f"<table class='ftlab-samples'>{head}{body}</table>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)
