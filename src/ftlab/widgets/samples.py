"""Samples view: the same prompts answered before training (step 0) and after, side by side.

Loss curves say *that* something changed; the answers show *what*. The view listens to
``SamplesLogged`` events: the first one of a run (step 0, the base model) is the "before"
column, the latest one is the "after" column.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from .dashboard import as_dict

_CSS = ("<style>.ftlab-samples td,.ftlab-samples th{vertical-align:top;padding:4px 8px;"
        "text-align:left;border-bottom:1px solid #ddd;font-size:13px;max-width:260px;"
        "white-space:pre-wrap;word-break:break-word}.ftlab-samples .bad{color:#b00}"
        ".ftlab-samples .ok{color:#070}</style>")


class SamplesView:
    """An HTML table of validation prompts: expected answer, before, after."""

    def __init__(self, max_chars: int = 240) -> None:
        self.max_chars = max_chars
        self.before: dict | None = None
        self.after: dict | None = None
        self.widget = w.HTML(value=self._render())

    def on_event(self, event: Any) -> None:
        """Listener for ``train(on_event=...)``."""
        e = as_dict(event)
        if e.get("kind") == "start":
            self.before = self.after = None
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
        for record in run.samples:
            self.on_event(record)
        return self

    @property
    def rows(self) -> list[dict]:
        """``[{"question", "expected", "before", "after"}]`` (after is None until a later
        sample arrives)."""
        before = (self.before or {}).get("samples", [])
        after = (self.after or {}).get("samples", [])
        return [{"question": b["question"], "expected": b["expected"], "before": b["answer"],
                 "after": after[i]["answer"] if i < len(after) else None}
                for i, b in enumerate(before)]

    def _cell(self, sample: dict | None) -> str:
        if sample is None:
            return "<td><i>…</i></td>"
        text = sample["answer"]
        shown = text if len(text) <= self.max_chars else text[: self.max_chars] + "…"
        stop = ("" if sample.get("stopped", True)
                else " <span class='bad' title='did not emit an end-of-turn token'>"
                "[no stop]</span>")
        mark = "ok" if sample["expected"].strip() in text else ""
        return f"<td class='{mark}'>{html.escape(shown)}{stop}</td>"

    def _render(self) -> str:
        if self.before is None:
            return ("<div class='ftlab-samples'><i>Samples appear here: the base model's "
                    "answers at step 0, then the trained model's.</i></div>")
        after_step = f"(step {self.after['step']})" if self.after else ""
        head = ("<tr><th>question</th><th>expected</th><th>before (step "
                f"{self.before['step']})</th><th>after {after_step}</th></tr>")
        after = (self.after or {}).get("samples", [])
        body = "".join(
            f"<tr><td>{html.escape(s['question'])}</td><td>{html.escape(s['expected'])}</td>"
            f"{self._cell(s)}{self._cell(after[i] if i < len(after) else None)}</tr>"
            for i, s in enumerate(self.before["samples"]))
        return f"{_CSS}<table class='ftlab-samples'>{head}{body}</table>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)
