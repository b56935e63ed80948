"""A small chat: one message, the trained model's answer beside the base model's.

Type a message and press **Send**; both models answer it (greedy, one turn, the model's
own chat template) and the pair is added to the transcript. ``chat.ask(text)`` is the same
path from code, blocking, returning the answers: what a notebook calls so it also runs
headless (nbval). The button answers on a background thread so the notebook stays usable.

With a PEFT model and no ``base`` given, the base answers come from the *same* model with
its adapter switched off (``model.disable_adapter()``): no second copy in memory, and
exactly the weights training started from.

Given the ``run`` the model came from, the view also offers **Export**: the model as an
adapter, a merged model or a GGUF file, checked and with a model card (``ftlab.export``).
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from ..errors import ConfigError
from ..generation import Answer, generate_answers

_CSS = ("<style>.ftlab-chat td,.ftlab-chat th{vertical-align:top;padding:4px 8px;"
        "text-align:left;border-bottom:1px solid #ddd;font-size:13px;max-width:340px;"
        "white-space:pre-wrap;word-break:break-word}.ftlab-chat .you{color:#1f5fbf}"
        ".ftlab-chat .nostop{color:#b00}</style>")


def _problem(e: BaseException) -> str:
    """An error as one red line in the view (its message says what to do)."""
    return (f"<span style='color:#b00'>{html.escape(type(e).__name__)}: "
            f"{html.escape(str(e))}</span>")


def _in_background(button, status, busy: str, work, name: str) -> threading.Thread:
    """A button's work on a background thread, so the notebook stays usable: the button is
    off meanwhile, ``status`` shows ``busy``, then what ``work`` returns or the problem in
    one red line (nothing is lost), and the button is on again."""
    button.disabled = True
    status.value = busy

    def run() -> None:
        try:
            status.value = work()
        except Exception as e:  # noqa: BLE001 - shown in the widget
            status.value = _problem(e)
        finally:
            button.disabled = False

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    return thread


class ChatView:
    """Ask two models the same message; show their answers side by side.

    ``model``/``tok``: the trained model. ``base``: the model to compare with; ``None``
    uses ``model`` with its adapter disabled (PEFT models only). ``names`` label the two
    columns. ``system``: an optional system message put before every user message.
    """

    def __init__(self, model, tok, base=None, *, names: Sequence[str] = ("trained", "base"),
                 max_new_tokens: int = 64, system: str | None = None, run=None) -> None:
        if model is None:
            raise ConfigError(
                "model", None, "a loaded model to chat with",
                "A run read back from the run cache has no model in memory (run.model is "
                "None): get one with `model, tok = ftlab.instruments.adapters.model_of(run)` "
                "(its saved weights, else trained again), or load a base model with "
                "ftlab.models.load_model(...).")
        if tok is None:
            raise ConfigError("tok", None, "the model's tokenizer",
                              "Pass the tokenizer that came with the model (run.tokenizer, or "
                              "the second value of load_model / model_of).")
        if base is None and not hasattr(model, "disable_adapter"):
            raise TypeError("base=None needs a PEFT model (its adapter is switched off for "
                            "the base answers); pass base=<the base model> otherwise.")
        self.model, self.tok, self.base = model, tok, base
        self.names = tuple(names)
        self.max_new_tokens = max_new_tokens
        self.system = system
        self.history: list[dict[str, Any]] = []  # {"message", <name>: Answer, ...}
        self._lock = threading.Lock()

        self.text = w.Text(placeholder="Type a message, then press Send",
                           layout=w.Layout(width="560px"))
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane",
                                    tooltip="Both models answer this message (greedy).")
        self.send_button.on_click(lambda _b: self.send())
        self.status = w.HTML("")
        self.transcript = w.HTML(self._render())
        rows = [self.transcript, w.HBox([self.text, self.send_button],
                                        layout=w.Layout(align_items="center")), self.status]
        self.run = run
        if run is not None:
            rows += self._export_row(run)
        self.widget = w.VBox(rows, layout=w.Layout(width="780px"))

    # -- exporting --------------------------------------------------------------------
    def _export_row(self, run) -> list:
        from ..export import FORMATS, default_folder

        method = run.config.method
        formats = [f for f in FORMATS if not (f == "adapter" and method.trains_base)
                   and not (f != "adapter" and method.name in ("prefix", "prompt"))]
        self.export_format = w.Dropdown(options=formats, value=formats[0],
                                        description="Export as", layout=w.Layout(width="200px"))
        self.export_quant = w.Dropdown(options=["q8_0", "f16", "f32"], value="q8_0",
                                       description="weights", layout=w.Layout(width="170px"))
        self.export_folder = w.Text(value=str(default_folder(run, formats[0], "q8_0")),
                                    description="folder", layout=w.Layout(width="330px"))
        self.export_button = w.Button(description="Export", icon="download",
                                      tooltip="Write the model, load it back, compare its "
                                              "answers, and write a model card.")
        self.export_status = w.HTML("")

        def follow(_change=None) -> None:
            fmt = self.export_format.value
            self.export_quant.layout.display = "" if fmt == "gguf" else "none"
            self.export_folder.value = str(default_folder(run, fmt, self.export_quant.value))

        self.export_format.observe(follow, "value")
        self.export_quant.observe(follow, "value")
        follow()
        self.export_button.on_click(lambda _b: self.export_clicked())
        return [w.HBox([self.export_format, self.export_quant, self.export_folder,
                        self.export_button], layout=w.Layout(align_items="center")),
                self.export_status]

    def export(self, format: str | None = None, folder: str | None = None,
               quant: str | None = None, overwrite: bool = False):
        """What the Export button does, blocking: ``ftlab.export.export`` of the view's run
        with the row's choices (or the ones given); returns the ``Export``."""
        from ..export import export

        if self.run is None:
            raise ConfigError("run", None, "the run this model came from",
                              "Make the view with ChatView(model, tok, run=run) to export.")
        with self._lock:  # the check generates with the model: not while it answers a chat
            return export(self.run, folder or self.export_folder.value,
                          format or self.export_format.value,
                          quant=quant or self.export_quant.value, overwrite=overwrite,
                          model=self.model, tokenizer=self.tok)

    def export_clicked(self) -> threading.Thread:
        """The Export button: export on a background thread; the result or the problem is
        shown under the row in one line."""
        def work() -> str:
            done = self.export()
            return (html.escape(str(done))
                    + f"; model card: {html.escape(str(done.path / 'README.md'))}")

        return _in_background(self.export_button, self.export_status, "<i>Exporting, then "
                              "loading it back to compare answers…</i>", work, "ftlab-export")

    # -- answering --------------------------------------------------------------------
    def _chat(self, text: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return [*msgs, {"role": "user", "content": text}]

    def _answer(self, model, chat: list[dict], adapter_off: bool = False) -> Answer:
        ctx = model.disable_adapter() if adapter_off else contextlib.nullcontext()
        with ctx:
            return generate_answers(model, self.tok, [chat], max_new_tokens=self.max_new_tokens,
                                    batch_size=1)[0]

    def answers(self, text: str) -> dict[str, Answer]:
        """Both models' answers to ``text`` (nothing is added to the transcript)."""
        chat = self._chat(text)
        with self._lock:  # one generation at a time: the adapter switch is model state
            trained = self._answer(self.model, chat)
            base = (self._answer(self.model, chat, adapter_off=True) if self.base is None
                    else self._answer(self.base, chat))
        return {self.names[0]: trained, self.names[1]: base}

    def ask(self, text: str) -> dict[str, str]:
        """Send ``text`` (what the Send button does), wait, return ``{name: answer text}``.

        An empty message is a ``ConfigError`` (one line in a notebook, no traceback); the
        transcript is left as it was."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("message", text, "a question in words",
                              "Type something to ask; the transcript is unchanged.")
        text = text.strip()
        got = self.answers(text)
        self.history.append({"message": text, **got})
        self.transcript.value = self._render()
        return {name: a.text for name, a in got.items()}

    def send(self) -> threading.Thread | None:
        """The Send button: answer the text box's message on a background thread."""
        text = self.text.value.strip()
        if not text:
            self.status.value = "<i>Type a message first.</i>"
            return None
        self.text.value = ""

        def work() -> str:
            self.ask(text)
            return ""

        return _in_background(self.send_button, self.status, "<i>Both models are answering…</i>",
                              work, "ftlab-chat")

    # -- showing ----------------------------------------------------------------------
    def _cell(self, a: Answer) -> str:
        stop = "" if a.stopped else (" <span class='nostop' title='no end-of-turn token "
                                     "within the token budget'>[cut]</span>")
        return f"<td>{html.escape(a.text)}{stop}</td>"

    def _render(self) -> str:
        if not self.history:
            return ("<div class='ftlab-chat'><i>Ask something: the trained model and the base "
                    "model answer the same message.</i></div>")
        head = ("<tr><th>you</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in self.names)
                + "</tr>")
        body = "".join(
            f"<tr><td class='you'>{html.escape(h['message'])}</td>"
            + "".join(self._cell(h[n]) for n in self.names) + "</tr>"
            for h in self.history)
        return f"{_CSS}<table class='ftlab-chat'>{head}{body}</table>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        return self.widget._repr_mimebundle_(**kwargs)
