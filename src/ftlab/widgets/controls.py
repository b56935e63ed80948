"""Knob metadata -> one input widget per knob.

The range, the log scale and the tooltip all come from the knob's own metadata
(``ftlab.knobs``), so a slider can never offer what the config would refuse and its
tooltip is the same help text the ``ConfigError`` quotes. Metadata ranges are what is
*allowed* (``max_steps`` up to 100 000); ``TEACHING_RANGES`` narrows a slider to what is
*useful* in a lab, and a lab can pass its own range per knob.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from ..config import (
    ALIASES,
    DataConfig,
    EvalConfig,
    PrefConfig,
    RLConfig,
    RunConfig,
    TrainConfig,
)
from ..data.tasks import TASKS
from ..errors import ConfigError
from ..knobs import check_value, knobs_of
from ..methods import METHODS

# Slider ends that make sense on a lesson's time scale (the knob metadata stays the law).
TEACHING_RANGES: dict[str, tuple[float, float]] = {
    "train.learning_rate": (1e-6, 1e-1),
    "train.max_steps": (1, 200),
    "train.batch_size": (1, 64),
    "train.warmup_steps": (0, 50),
    "train.weight_decay": (0.0, 0.3),
    "train.max_grad_norm": (0.1, 10.0),
    "data.size": (20, 2000),
    "data.max_length": (32, 512),
    "data.corruption_rate": (0.0, 1.0),
    "eval.every": (1, 50),
    "eval.early_stopping_patience": (0, 10),  # 0 = off (None)
    "eval.samples": (0, 8),
    "eval.sample_max_new_tokens": (8, 128),
    "method.r": (1, 64),
    "method.alpha": (1.0, 128.0),
    "method.dropout": (0.0, 0.5),
    "method.num_virtual_tokens": (1, 100),
    "rl.kl": (1e-3, 1.0),
    "pref.beta": (1e-2, 10.0),
    "pref.p_longer": (0.0, 1.0),
    "pref.ld_alpha": (0.0, 1.0),
    "rl.generations": (2, 16),
    "rl.max_completion_length": (8, 128),
    "rl.temperature": (0.3, 1.5),
    "rl.length_penalty": (0.0, 0.05),
    "rl.gold_target_words": (5, 50),
    "rl.labeller_p_longer": (0.0, 1.0),
    "rl.fact_fraction": (0.0, 1.0),
}

# What a knob is called beside its widget (the notebooks' prose uses the same words); short
# enough for the 140 px label column. Unlisted knobs show their field name.
LABELS = {"train.learning_rate": "learning rate", "train.max_steps": "steps",
          "data.size": "dataset size", "method.r": "LoRA rank r",
          "method.alpha": "LoRA alpha", "method.num_virtual_tokens": "virtual tokens",
          "eval.early_stopping_patience": "patience", "eval.every": "eval every",
          "data.mix_share": "mix share", "rl.kl": "KL coefficient β",
          "rl.max_completion_length": "max answer tokens", "rl.reward": "proxy reward",
          "rl.labeller_p_longer": "P(prefers longer)", "rl.length_penalty": "length penalty",
          "rl.generations": "answers / question", "data.task": "task",
          "pref.loss": "objective", "pref.beta": "β", "pref.p_longer": "P(prefers longer)",
          "pref.ld_alpha": "LD-DPO α", "pref.reference": "reference model"}

# Knobs a free-text field would let a learner mistype: offered as their allowed values.
CHOICES: dict[str, tuple[str, ...]] = {"data.task": tuple(TASKS)}

# Optional knobs whose None is the slider value that does the same (not 0): LD-DPO's alpha
# of 1 weighs every token fully, which is plain DPO.
OFF_AT: dict[str, float] = {"pref.ld_alpha": 1.0}

# A knob shown only while another knob has the value that uses it.
APPLIES: dict[str, tuple[str, Any]] = {"rl.labeller_p_longer": ("rl.reward", "learned")}

_SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig, "rl": RLConfig,
             "pref": PrefConfig}


class Guarded:
    """Mixin for a knob's input widget: a value assigned in Python passes ``guard`` first.

    Without it, ``panel["lr"].value = -1`` is clamped into the slider's range without a
    word (ipywidgets' bounded widgets cap and floor ``value`` in their validator), a text
    such as ``"1e-3"`` is cast, and a wrong type is a bare ``TraitError``. ``guard`` returns
    the value to show or raises ``ConfigError``, so the widget keeps its value. The
    browser's own changes arrive through ``set_trait`` and do not pass here (a slider
    cannot be dragged out of its range; a typed field is checked on Run).
    """

    guard: Callable[[Any], Any] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "value" and self.guard is not None:
            value = self.guard(value)
        super().__setattr__(name, value)


def guarded(cls: type[w.Widget]) -> type[w.Widget]:
    """The ``Guarded`` version of an ipywidgets class (same frontend model and view)."""
    if cls not in _GUARDED:
        _GUARDED[cls] = type(cls.__name__, (Guarded, cls), {"__module__": __name__,
                                                              "__doc__": cls.__doc__})
    return _GUARDED[cls]


_GUARDED: dict[type, type] = {}


def not_applied(error: ConfigError, path: str, kept: Any) -> ConfigError:
    """A value refused at a widget: the knob's own message, and what the widget still shows."""
    return ConfigError(error.field, error.value, error.expected,
                       f"{error.fix} Not applied: {path} stays {kept!r}.".strip())


@dataclass
class Knob:
    """One knob as the panel sees it: its dotted path, metadata and input widget.

    A value set on the widget in Python passes the knob's check (``admit``): refused, it is
    a ``ConfigError`` saying what stays shown, and ``report(path, message)`` puts it in the
    panel; ``report(path, "")`` follows an accepted value.
    """

    path: str
    meta: dict
    widget: w.Widget
    off_value: Any = "unset"  # the widget value that means None (an optional knob left off)
    report: Callable[[str, str], None] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.widget, Guarded):
            self.widget.guard = self._guard

    @property
    def is_method_knob(self) -> bool:
        return self.path.startswith("method.")

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def get(self) -> Any:
        value = self.widget.value
        return None if value == self.off_value else value

    def check(self, value: Any) -> None:
        """Raise ``ConfigError`` if the config would refuse ``value`` (the same check), or
        if the panel's dropdown does not offer it (``CHOICES``)."""
        check_value(self.path, value, self.meta)
        offered = CHOICES.get(self.path)
        if offered is not None and value not in offered:
            raise ConfigError(self.path, value, "one of " + ", ".join(map(repr, offered)),
                              "The values this panel offers; a file of your own is set "
                              "with data.path in the config.")

    def set(self, value: Any) -> None:
        """Show ``value`` once it passes the knob's check; a slider widens its range
        rather than silently clamping."""
        if isinstance(self.widget, Guarded):
            self.widget.value = value  # the guard admits it (or refuses it)
        else:
            self.widget.value = self.admit(value)

    def admit(self, value: Any) -> Any:
        """The widget value that shows ``value``, which must pass the knob's check
        (``ConfigError`` otherwise). A slider widens its range to show an allowed value
        beyond it; the widget's own 'off' value (0, '') stands for None."""
        if (self.off_value != "unset" and type(value) is not bool
                and isinstance(value, str) == isinstance(self.off_value, str)
                and value == self.off_value):
            value = None
        self.check(value)
        if value is None:
            return self.off_value if self.off_value != "unset" else self.widget.value
        if hasattr(self.widget, "max") and isinstance(value, (int, float)):
            if isinstance(self.widget, w.FloatLogSlider):
                if value > 0:
                    self.widget.max = max(self.widget.max, math.ceil(math.log10(value)))
                    self.widget.min = min(self.widget.min, math.floor(math.log10(value)))
            else:
                self.widget.max = max(self.widget.max, value)
                self.widget.min = min(self.widget.min, value)
        return value

    def _guard(self, value: Any) -> Any:
        try:
            shown = self.admit(value)
        except ConfigError as e:
            error = not_applied(e, self.path, self.get())
            if self.report is not None:
                self.report(self.path, str(error))
            raise error from None
        if self.report is not None:
            self.report(self.path, "")
        return shown


def knob_path(name: str) -> str:
    """A short name (``lr``, ``r``, ``size``) or dotted path -> the dotted path."""
    if name in ALIASES:
        return ALIASES[name]
    if "." in name:
        section, field = name.split(".", 1)
        owners = ([c for c in METHODS.values()] if section == "method"
                  else [_SECTIONS.get(section)])
        if any(c is not None and field in knobs_of(c) for c in owners):
            return name
    else:
        for section, cls in _SECTIONS.items():
            if name in knobs_of(cls):
                return f"{section}.{name}"
        if any(name in knobs_of(c) for c in METHODS.values()):
            return f"method.{name}"
        if name in knobs_of(RunConfig):
            return name
    raise ConfigError("knobs", name, "a knob name such as 'lr', 'steps', 'size', 'r', "
                      "'num_virtual_tokens' or a dotted path like 'train.warmup_steps'")


def knob_meta(path: str, method_name: str | None = None) -> dict:
    """The metadata of a dotted knob path (a method knob from the method that has it)."""
    if path.startswith("method."):
        field = path.split(".", 1)[1]
        classes = ([METHODS[method_name]] if method_name in METHODS else []) + list(
            METHODS.values())
        for cls in classes:
            if field in knobs_of(cls):
                return knobs_of(cls)[field]
    if "." in path:
        section, field = path.split(".", 1)
        return knobs_of(_SECTIONS[section])[field]
    return knobs_of(RunConfig)[path]


def config_value(cfg: RunConfig, path: str) -> Any:
    """Read a knob's value from a config (None when the method lacks it)."""
    if "." not in path:
        return getattr(cfg, path)
    section, field = path.split(".", 1)
    obj = cfg.method if section == "method" else getattr(cfg, section)
    if dataclasses.is_dataclass(obj) and field in {f.name for f in dataclasses.fields(obj)}:
        return getattr(obj, field)
    return None


def make_knob(path: str, meta: dict, value: Any,
              view: tuple[float, float] | None = None) -> Knob:
    """Build the input widget a knob deserves: dropdown, checkbox, (log) slider or field."""
    label = LABELS.get(path, path.rsplit(".", 1)[-1].replace("_", " "))
    common = {"description": label, "tooltip": meta.get("help", ""),
              "style": {"description_width": "140px"},
              "layout": w.Layout(width="360px")}
    if value is None:
        value = meta.get("default")
    choices = meta.get("choices") or CHOICES.get(path)
    if choices and set(choices) == {True, False}:
        return Knob(path, meta, guarded(w.Checkbox)(value=bool(value), indent=False,
                                                    **common))
    if choices:
        return Knob(path, meta, guarded(w.Dropdown)(options=list(choices), value=value,
                                                    **common))
    if "str" in str(meta.get("type", "")).split(" | ") or isinstance(value, str):
        # a free text knob (model, device, data.path): a field; None shows as empty
        return Knob(path, meta, guarded(w.Text)(value=value or "", **common),
                    off_value="" if meta.get("optional") else "unset")
    low, high = view or TEACHING_RANGES.get(path, (None, None))
    if value is not None:
        is_int = isinstance(value, int)
    else:
        is_int = isinstance(low, int) and isinstance(high, int)
    if meta.get("log"):
        lo_exp = math.floor(math.log10(low)) if low and low > 0 else -6
        hi_exp = math.ceil(math.log10(high)) if high else 0
        widget = guarded(w.FloatLogSlider)(value=value, base=10, min=lo_exp, max=hi_exp,
                                           step=0.1, readout_format=".1e",
                                           continuous_update=False, **common)
        return Knob(path, meta, widget)
    if low is None or high is None:  # no teaching range (seed, ...): a free field
        cls = guarded(w.IntText if is_int else w.FloatText)
        return Knob(path, meta, cls(value=value if value is not None else 0, **common))
    off: Any = "unset"
    if path in OFF_AT:  # None is the knob's own end of the slider (LD-DPO's alpha = 1)
        off = OFF_AT[path]
        value = off if value is None else value
    elif value is None or path == "eval.early_stopping_patience":
        off = 0  # an optional knob that means "off" when None: 0 on the slider
        low, value = 0, 0 if value is None else value
    if is_int:
        widget = guarded(w.IntSlider)(value=int(value), min=int(low),
                                      max=max(int(high), int(value)),
                                      continuous_update=False, **common)
    else:
        widget = guarded(w.FloatSlider)(value=float(value), min=float(low),
                                        max=max(float(high), float(value)),
                                        step=(float(high) - float(low)) / 100,
                                        readout_format=".3g", continuous_update=False, **common)
    return Knob(path, meta, widget, off_value=off)
