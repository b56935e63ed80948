"""One object describes a run. Widgets, notebooks and the CLI all build a ``RunConfig``.

Fields left ``None`` are filled from the preset (``cpu`` or ``gpu``, picked from the device
unless named) when the run starts, so the same config is small on a laptop and classroom
sized on a GPU. ``config.replace(lr=..., r=...)`` changes knobs by their short names.

The doors values pass, whichever way they come (``RunConfig(...)``, ``replace``, an
attribute set on a config, ``from_dict``, the CLI's ``--set``, the panel):

- a whole-number knob given a whole float (``steps=2.0``) keeps the int (``2``: the same
  run, the same cache key); ``2.5``, ``True`` are refused by ``validate`` with one message
  (``ftlab.knobs.stored``);
- a section may be given as a dict of its knobs and becomes its config at once (an
  attribute set too, so no part of ftlab ever sees a dict); ``rl`` also takes ``True`` /
  ``"on"`` (a GRPO run with default knobs) and ``None`` / ``False`` / ``"off"`` (supervised);
- an RL knob (``rl.kl``) on a run with no RL section is refused, naming how to switch RL on:
  a knob never turns a supervised run into a GRPO run by itself. ``replace`` applies ``rl``
  before the other changes, so ``replace(rl=True, **{"rl.kl": 0.5})`` and ``--set rl.kl=0.5
  --set rl=on`` work in any order.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config_file import read_config_file, write_config_file
from .data.formats import FORMATS
from .data.tasks import TASKS
from .errors import ConfigError, ConfigFileError
from .knobs import KnobConfig, empty_name, knob, unknown_knob, validate
from .methods import METHODS, Lora, MethodConfig, method_config
from .models import DEFAULT_MODEL, DEVICE_ALLOWED, DEVICE_PATTERN

PRESETS: dict[str, dict[str, Any]] = {
    # cpu: a run of the real model takes about a minute on 2 cores.
    "cpu": {"data.size": 72, "data.val_size": 24, "data.max_length": 128, "train.max_steps": 24,
            "train.batch_size": 8, "eval.every": 8, "eval.samples": 2},
    # gpu: classroom scale, minutes on one GPU.
    "gpu": {"data.size": 1200, "data.val_size": 200, "data.max_length": 256, "train.max_steps": 300,
            "train.batch_size": 16, "eval.every": 25, "eval.samples": 4},
}


@dataclass
class DataConfig(KnobConfig):
    """Which examples are trained on, and how they are turned into tokens."""

    knob_prefix = "data."

    task: str = knob("arithmetic", "Generated task to train on (ignored when path is set).")
    path: str | None = knob(None, "A JSONL file of your own rows (messages, or prompt and "
                            "completion); split 60/20/20.", optional=True, file=True)
    size: int | None = knob(None, "Training examples generated. Validation and test rows come "
                            "from a held-out pool fixed by the seed, the same at every size.",
                            low=10, high=5000, optional=True)
    val_size: int | None = knob(None, "Held-out rows whose loss is measured at every "
                                "evaluation (the same rows at every training size).",
                                low=1, high=200, optional=True)
    format: str = knob("chat", "How training rows are rendered; 'chat' is the model's own "
                       "template.", choices=tuple(FORMATS))
    corruption_rate: float = knob(0.0, "Share of training rows rendered in the corruption "
                                  "format instead.", low=0.0, high=1.0)
    corruption: str = knob("plain_qa", "The format applied to corrupted rows.",
                           choices=tuple(FORMATS))
    max_length: int | None = knob(None, "Longest tokenized example; longer ones are cut.",
                                  low=16, high=8192, optional=True)
    mix_share: float = knob(0.0, "Share of training rows replaced by general instruction "
                            "rows (ftlab.data.mix), to keep the model's general behaviour.",
                            low=0.0, high=0.9)

    @property
    def scored_as(self) -> str:
        """The task whose answers a score checks: the generated task, or "own" for a file."""
        return self.task if self.path is None else "own"


@dataclass
class TrainConfig(KnobConfig):
    """Optimisation hyperparameters."""

    knob_prefix = "train."

    learning_rate: float | None = knob(None, "Peak learning rate (default: the method's own).",
                                       low=0.0, low_open=True, high=1.0, log=True,
                                       optional=True)
    max_steps: int | None = knob(None, "Optimizer steps to take.", low=1, high=100_000,
                                 optional=True)
    batch_size: int | None = knob(None, "Examples per optimizer step.", low=1, high=1024,
                                  optional=True)
    warmup_steps: int = knob(0, "Steps of linear learning-rate warm-up.", low=0, high=10_000)
    lr_scheduler: str = knob("constant", "How the learning rate changes after warm-up.",
                             choices=("constant", "linear", "cosine"))
    weight_decay: float = knob(0.0, "AdamW weight decay.", low=0.0, high=1.0)
    max_grad_norm: float = knob(1.0, "Gradient clipping norm.", low=0.0, low_open=True,
                                high=1000.0)
    report_to: str = knob("none", "Experiment trackers that also receive the trainer's logs, "
                          "offline and as files: TensorBoard event files in the run folder "
                          "(tensorboard/), an MLflow file store beside the run folders "
                          "(mlruns/, or MLFLOW_TRACKING_URI). Needs pip install "
                          "'ftlab[track]'. The run folder stays the record; a run asked to "
                          "report is another config (another hash), so it is trained and "
                          "reported, never replayed from a run that was not.",
                          choices=("none", "tensorboard", "mlflow", "tensorboard,mlflow"))


@dataclass
class EvalConfig(KnobConfig):
    """When to measure during training, and when to stop early."""

    knob_prefix = "eval."

    every: int | None = knob(None, "Evaluate validation loss every N steps (and at the end).",
                             low=1, high=100_000, optional=True)
    early_stopping_patience: int | None = knob(
        None, "Stop after this many evaluations without a better validation loss, then "
        "restore the best weights (None: off).", low=1, high=1000, optional=True)
    samples: int | None = knob(None, "Validation prompts answered (greedy) at each "
                               "evaluation, to watch outputs change.", low=0, high=64,
                               optional=True)
    sample_max_new_tokens: int = knob(48, "Longest generated sample.", low=1, high=2048)


@dataclass
class RLConfig(KnobConfig):
    """Policy optimisation (GRPO, see ``ftlab.rl``): what is rewarded, how far it may drift.

    A run with an ``rl`` section optimises the method's trainable parameters (the policy's
    adapters) against a proxy reward on a prompt set (``data.size`` prompts from
    ``ftlab.rlhf.make_prompts``; ``train.batch_size`` prompts per step, ``train.max_steps``
    steps); the gold reward is measured on the same completions and never optimised.
    ``None`` fields come from the RL preset (``RL_PRESETS``).
    """

    knob_prefix = "rl."

    reward: str | None = knob(None, "The proxy reward that is optimised: the programmatic "
                              "length proxy (fast) or a learned reward model trained on a "
                              "length-loving labeller's choices.",
                              choices=("length_proxy", "learned"), optional=True)
    kl: float = knob(0.02, "KL coefficient (beta): how strongly the policy is held near the "
                     "reference model. Must be > 0 so that KL is computed and shown; use "
                     "0.001 for almost no penalty.", low=0.0, low_open=True, high=10.0, log=True)
    generations: int | None = knob(None, "Completions sampled per prompt (GRPO compares "
                                   "them).", low=2, high=64, optional=True)
    max_completion_length: int | None = knob(None, "Longest completion, in tokens.", low=4,
                                             high=2048, optional=True)
    temperature: float = knob(1.0, "Sampling temperature of the completions.", low=0.0,
                              low_open=True, high=2.0)
    length_penalty: float = knob(0.0, "Mitigation: subtracted from the optimised reward per "
                                 "word of the completion (0: off; 1/60 = 0.0167 cancels the "
                                 "length proxy's pay for words).", low=0.0, high=1.0)
    fact_fraction: float = knob(0.25, "Share of the prompts that are fact questions; the "
                                "rest are arithmetic word problems.", low=0.0, high=1.0)
    gold_target_words: int = knob(15, "Gold reward: a correct answer up to this many words "
                                  "scores 1, a longer one proportionally less.", low=1,
                                  high=500)
    labeller_p_longer: float = knob(0.7, "Learned proxy only: how often the labeller whose "
                                    "choices train the reward model simply prefers the longer "
                                    "answer.", low=0.0, high=1.0)


# An RL run's sizes: the supervised preset with these on top (a GRPO step generates
# batch_size x generations completions, so both stay small on a CPU).
RL_PRESETS: dict[str, dict[str, Any]] = {
    # cpu: 4 prompts x 4 completions x 32 tokens a step, the programmatic proxy.
    "cpu": {"data.size": 40, "train.max_steps": 16, "train.batch_size": 4, "eval.every": 4,
            "eval.samples": 2, "rl.reward": "length_proxy", "rl.generations": 4,
            "rl.max_completion_length": 32},
    # gpu: classroom scale, the learned reward model as the proxy.
    "gpu": {"data.size": 400, "train.max_steps": 150, "train.batch_size": 16,
            "eval.every": 25, "eval.samples": 4, "rl.reward": "learned", "rl.generations": 8,
            "rl.max_completion_length": 96},
}


@dataclass
class PrefConfig(KnobConfig):
    """Preference tuning (DPO and its relatives, ``ftlab.engine.preference``): what is learned
    from pairs of answers, one preferred over the other, with no reward model and no sampling.

    The pairs come from ``ftlab.rlhf.preference_pairs`` (``data.size`` prompts, a labeller who
    prefers the longer answer ``p_longer`` of the time) or from a JSONL file (``path``).
    ``train.batch_size`` counts pairs per step (KTO: single answers, each pair giving two).
    ``None`` fields come from ``PREF_PRESETS``.
    """

    knob_prefix = "pref."

    loss: str = knob("dpo", "The objective: dpo (Rafailov et al. 2023), ipo, kto (unpaired "
                     "thumbs up/down), orpo (no reference model, with the SFT loss) or simpo "
                     "(no reference model, length-normalised).",
                     choices=("dpo", "ipo", "kto", "orpo", "simpo"))
    beta: float | None = knob(None, "Strength of the preference term (DPO's beta: how far "
                              "from the reference the policy may move; SimPO's reward "
                              "scale). None: the loss's usual value.", low=0.0, low_open=True,
                              high=100.0, log=True, optional=True)
    reference: str = knob("auto", "The reference model: live (the base, adapters off, run "
                          "each step), precomputed (its log-probabilities computed once "
                          "before training) or none (orpo and simpo need none). auto: "
                          "live where the loss needs one.",
                          choices=("auto", "live", "precomputed", "none"))
    ld_alpha: float | None = knob(None, "DPO only: length desensitisation (LD-DPO, Liu et al. "
                                  "2024). Tokens past the shorter answer's length count "
                                  "with this weight; 1 = plain DPO.", low=0.0, high=1.0,
                                  optional=True)
    p_longer: float = knob(0.7, "The labeller's bias: how often it simply prefers the longer "
                           "answer (otherwise the correct, then the concise one).", low=0.0,
                           high=1.0)
    pairs_per_prompt: int = knob(2, "Pairs the labeller judges per prompt.", low=1, high=16)
    path: str | None = knob(None, "A JSONL file of your own pairs ({prompt, chosen, "
                            "rejected} a line; for kto also {prompt, completion, label}) "
                            "instead of the labeller's.", optional=True, file=True)
    max_length: int | None = knob(None, "Longest prompt plus answer, in tokens.", low=16,
                                  high=8192, optional=True)


# Each objective's usual beta, filled in by ``resolved`` when ``pref.beta`` is None: DPO's
# 0.1 (Rafailov et al.) for the losses against a reference and ORPO's lambda; SimPO's 2.0
# (Meng et al.: its rewards are mean log-probabilities, on another scale).
PREF_BETA = {"dpo": 0.1, "ipo": 0.1, "kto": 0.1, "orpo": 0.1, "simpo": 2.0}
REFERENCE_FREE = frozenset({"orpo", "simpo"})  # the objectives that need no reference model

# A preference run's sizes: the supervised preset with these on top. A DPO step runs the
# policy and the reference on both answers of every pair.
PREF_PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"data.size": 48, "train.max_steps": 12, "train.batch_size": 8, "eval.every": 6,
            "eval.samples": 2, "pref.max_length": 160},
    "gpu": {"data.size": 600, "train.max_steps": 150, "train.batch_size": 16,
            "eval.every": 25, "eval.samples": 4, "pref.max_length": 320},
}


# ``rl`` given as a word (``--set rl=on``): the words for on and off.
_RL_WORDS = {"on": True, "true": True, "off": None, "false": None, "none": None, "null": None}


def _as_switch(name: str, value: Any) -> Any:
    """A section that switches the trainer (``rl``, ``pref``): ``True``, ``"on"`` or ``{}``:
    that kind of run with default knobs; a dict: those knobs; ``None``, ``False`` or
    ``"off"``: a supervised run. Anything else is a ``ConfigError``: no part of ftlab ever
    finds a dict (or a word) where the section's config belongs."""
    cls = _SWITCHES[name]
    if isinstance(value, str) and value.strip().lower() in _RL_WORDS:
        value = _RL_WORDS[value.strip().lower()]
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        for key in value:
            if key not in _names(cls):
                raise cls.unknown_knob(key, value[key])
        return cls(**value)
    kind = _SWITCH_KINDS[name]
    raise ConfigError(name, value, f"on (true), off (false, null) or a dict of {name} knobs",
                      f"{name}=True (CLI: --set {name}=on) makes the run a {kind} run with "
                      f"default knobs; {name}=None (--set {name}=off) makes it supervised "
                      "again.")


def preset_values(preset: str, rl: bool = False, pref: bool = False) -> dict[str, Any]:
    """The sizes a preset fills in (dotted knob -> value); RL and preference runs' differ."""
    return {**PRESETS[preset], **(RL_PRESETS[preset] if rl else {}),
            **(PREF_PRESETS[preset] if pref else {})}


@dataclass
class RunConfig(KnobConfig):
    """Everything that defines a run; its hash names the run.

    A keyword that is not one of its fields (``RunConfig(nosuch=1)``, ``RunConfig(lr=1e-3)``)
    is a ``ConfigError`` naming it, with close matches and where a section knob goes.
    """

    model: str = knob(DEFAULT_MODEL, "Model spec: the embedded default, 'tiny', a folder or "
                      "a hub id.", file=True)
    method: MethodConfig = field(default_factory=Lora)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = knob(0, "Seed for data generation, initialisation and shuffling.",
                     low=0, high=2**31 - 1)
    preset: str = knob("auto", "Sizes for the machine: cpu (about a minute) or gpu "
                       "(classroom scale); auto picks from the device.",
                       choices=("auto", "cpu", "gpu"))
    device: str = knob("auto", "Where to train: auto (a GPU when there is one), cpu, cuda, "
                       "cuda:N (the GPU numbered N) or mps (Apple silicon).",
                       pattern=DEVICE_PATTERN, allowed=DEVICE_ALLOWED)
    dtype: str = knob("auto", "Weight dtype: auto (bf16 on a GPU with it, else float32).",
                      choices=("auto", "float32", "bfloat16", "float16"))
    save_weights: bool = knob(False, "Also save the adapter (or full weights) in the run "
                              "folder.", choices=(True, False))
    rl: RLConfig | None = None  # set: a policy-optimisation run instead of supervised
    pref: PrefConfig | None = None  # set: a preference run (DPO, KTO, ORPO, SimPO)

    def __setattr__(self, name: str, value: Any) -> None:
        # The door of the sections, for the constructor and for `config.rl = {...}` alike:
        # a dict (JSON, a notebook) becomes its section's config, an unknown key or a wrong
        # type is a ConfigError naming it, never a TypeError. Values are checked by validate().
        if name == "method":
            value = _as_method(value)
        elif name in _SWITCHES:
            value = _as_switch(name, value)
        elif name in _SECTIONS:
            value = _as_section(name, value)
        super().__setattr__(name, value)

    # -- checking ---------------------------------------------------------------------
    def validate(self) -> RunConfig:
        """Raise ``ConfigError`` naming the first field that is out of range."""
        if not isinstance(self.method, MethodConfig):
            raise ConfigError("method", self.method, "a method name or config: "
                              + ", ".join(map(repr, METHODS)))
        validate(self)
        if self.rl is not None and self.pref is not None:
            raise ConfigError("pref", "on", "off in a run with an rl section",
                              "A run is supervised, GRPO (rl) or preference tuning (pref): "
                              "switch one off (rl=None or pref=None).")
        if self.data.path is None and self.data.task not in TASKS:
            raise ConfigError("data.task", self.data.task,
                              "one of " + ", ".join(map(repr, TASKS)),
                              "Or set data.path to a JSONL file of your own.")
        return self

    # -- presets ----------------------------------------------------------------------
    def resolved(self, device_type: str | None = None) -> RunConfig:
        """A copy with every ``None`` size filled from the preset for this device."""
        self.validate()
        preset = self.preset
        if preset == "auto":
            if device_type is None:
                from .models import choose_placement

                device_type = choose_placement(self.device, self.dtype).device
            preset = "cpu" if device_type == "cpu" else "gpu"
        out = copy.deepcopy(self)
        out.preset = preset
        for dotted, value in preset_values(preset, self.rl is not None,
                                           self.pref is not None).items():
            section, name = dotted.split(".")
            if getattr(getattr(out, section), name) is None:
                setattr(getattr(out, section), name, value)
        if out.train.learning_rate is None:
            out.train.learning_rate = out.method.default_lr
        if out.pref is not None and out.pref.beta is None:
            out.pref.beta = PREF_BETA[out.pref.loss]
        return out.validate()

    # -- changing knobs by name ---------------------------------------------------------
    def replace(self, **changes: Any) -> RunConfig:
        """A copy with knobs changed; short names (``lr``, ``r``, ``steps``) or dotted paths.

        ``method="prefix"`` switches method (keeping no knobs of the old one).
        """
        out = copy.deepcopy(self)
        for key, value in changes.items():
            if not key.strip():
                raise empty_name(key, value)
        # A method or RL switch first, so that its knobs may come in the same call.
        for section in ("method", *_SWITCHES):
            if section in changes:
                setattr(out, section, copy.deepcopy(changes.pop(section)))
        for key, value in changes.items():
            obj, name = out._locate(ALIASES.get(key, key), value)
            setattr(obj, name, value)
        return out

    def _locate(self, key: str, value: Any) -> tuple[Any, str]:
        if "." in key:
            section, name = key.split(".", 1)
            obj = self.method if section == "method" else getattr(self, section, None)
            if obj is not None and dataclasses.is_dataclass(obj) and name in _names(obj):
                return obj, name
            if section in _SWITCHES and obj is None and name in _names(_SWITCHES[section]):
                shown = repr(value) if len(repr(value)) <= 40 else "..."
                what = "RL" if section == "rl" else "preference (pref)"
                article = "an" if section == "rl" else "a"
                raise ConfigError(key, value, f"a knob of a run with {article} {what} section",
                                  f"This run has no {what} section, and a knob does not "
                                  f"switch it on by itself. Switch it on in the same "
                                  f"call: config.replace({section}=True, **{{{key!r}: "
                                  f"{shown}}}); on the command line: --set {section}=on "
                                  f"--set {key}=VALUE.")
        else:
            owners = [o for o in (self, self.data, self.train, self.eval, self.method,
                                  self.rl, self.pref)
                      if o is not None and key in _names(o)
                      and not dataclasses.is_dataclass(getattr(o, key))]
            if len(owners) == 1:
                return owners[0], key
        names = sorted(self.knob_names())
        close = difflib.get_close_matches(str(key).lower(), names, n=3, cutoff=0.6)
        hint = ("Did you mean " + " or ".join(map(repr, close)) + "? ") if close else ""
        raise ConfigError(key, value, "a knob of this run: " + ", ".join(names),
                          f"{hint}Method {self.method.name!r} has: "
                          + (", ".join(_names(self.method)) or "no knobs") + ".")

    @classmethod
    def unknown_knob(cls, key: str, value: Any) -> ConfigError:
        """``RunConfig(lr=1e-3)``: name the section a knob lives in, and how to give it."""
        path = ALIASES.get(key, key)
        section, _, name = str(path).rpartition(".")
        owner = next((m for m in METHODS.values() if name in _names(m)), None)
        if not section:
            section = next((s for s, c in _SECTIONS.items() if name in _names(c)), "")
            section = section or ("method" if owner else "")
        if section not in (*_SECTIONS, "method") or (section == "method" and not owner):
            section = ""
        shown = repr(value) if len(repr(value)) <= 40 else "..."
        if section:
            inside = f"'name': {owner.name!r}, " if section == "method" and owner else ""
            by_name = f"{key}={shown}" if str(key).isidentifier() else f"**{{{key!r}: {shown}}}"
            fix = (f"{key!r} is a knob of the {section} section: give it as "
                   f"RunConfig({section}={{{inside}{name!r}: {shown}}}), or change a config "
                   f"with config.replace({by_name}).")
        else:
            fix = ("Remove it. A section's knob goes inside its section "
                   "(RunConfig(train={'learning_rate': 1e-3})) or through config.replace(lr=1e-3); "
                   "RunConfig().knob_names() lists every knob.")
        fields = [f.name for f in dataclasses.fields(cls)]
        if section:  # a knob, given in the wrong place: say where it goes, guess nothing
            return ConfigError(str(key), value, "a knob of RunConfig: " + ", ".join(fields),
                               fix)
        near = sorted({*ALIASES, *(n for c in _SECTIONS.values() for n in _names(c))}
                      - set(fields))  # a typo of a section knob ('lerning_rate'): name it
        return unknown_knob(str(key), value, fields, "RunConfig", fix, near)

    def knob_names(self) -> set[str]:
        names = set(ALIASES)
        for section in ("data", "train", "eval"):
            names |= {f"{section}.{n}" for n in _names(getattr(self, section))}
        names |= {f"method.{n}" for n in _names(self.method)}
        for section in _SWITCHES:
            if getattr(self, section) is not None:
                names |= {f"{section}.{n}" for n in _names(getattr(self, section))}
        return names | {n for n in _names(self)
                        if n not in ("data", "train", "eval", *_SWITCHES)}

    # -- (de)serialising ---------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["method"] = self.method.to_dict()
        for section in ("data", "train", "eval"):
            d[section] = dataclasses.asdict(d[section])
        d["rl"] = None if self.rl is None else dataclasses.asdict(self.rl)
        if self.pref is not None:  # absent when off: every earlier run keeps its hash
            d["pref"] = dataclasses.asdict(self.pref)
        else:
            del d["pref"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The config a dict describes (``to_dict``'s output, a config.json, JSON from a
        notebook); anything else is a ``ConfigError`` naming the key."""
        if not isinstance(d, dict):
            raise ConfigError("config", d, "a dict of RunConfig's fields (as to_dict gives)")
        for key, value in d.items():
            if not isinstance(key, str):
                raise cls.unknown_knob(key, value)
        return cls(**d)  # sections as dicts: __post_init__ checks and converts them

    # -- as a file -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write this config to ``path`` (YAML for ``.yaml``/``.yml``, JSON for ``.json``, the
        form of a run folder's ``config.json``), so a run can be shared, edited and launched
        with ``ftlab train --config``; ``from_file`` gives the same config and hash back.
        Only a valid config is written (``ConfigError`` otherwise)."""
        self.validate()
        return write_config_file(self.to_dict(), path)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RunConfig:
        """The config a file describes: one ``save`` wrote, one written by hand (fields left
        out keep their defaults) or a run folder (its ``config.json``).

        Values pass the door of ``from_dict`` and ``validate``, the one that ``replace`` and
        ``--set`` use; any problem is a ``ConfigFileError`` naming the file (and the line
        and column of a syntax error, or the knob at fault).
        """
        data, source = read_config_file(path)
        try:
            return cls.from_dict(data).validate()
        except ConfigError as e:
            raise ConfigFileError(source, str(e), field=e.field) from e

    def hash(self) -> str:
        """Same config, same hash (12 hex digits): names and caches the run."""
        from .digest import digest

        return digest(self.to_dict(), 12)


ALIASES = {"lr": "train.learning_rate", "learning_rate": "train.learning_rate",
           "steps": "train.max_steps", "max_steps": "train.max_steps",
           "batch_size": "train.batch_size", "size": "data.size", "task": "data.task",
           "format": "data.format", "patience": "eval.early_stopping_patience",
           "eval_every": "eval.every"}


_SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig,
                              "rl": RLConfig, "pref": PrefConfig}
# The sections that switch the trainer, and the kind of run each makes.
_SWITCHES: dict[str, type] = {"rl": RLConfig, "pref": PrefConfig}
_SWITCH_KINDS = {"rl": "GRPO", "pref": "preference-tuning"}


def _names(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def _as_section(name: str, value: Any) -> Any:
    """``data``, ``train`` or ``eval`` given as a dict of its knobs -> its config."""
    cls = _SECTIONS[name]
    if isinstance(value, dict):
        for key in value:
            if key not in _names(cls):  # (a key that is not even a str too)
                raise cls.unknown_knob(key, value[key])
        return cls(**value)
    if not isinstance(value, cls):
        raise ConfigError(name, value, f"a {cls.__name__} or a dict of its knobs")
    return value


def _as_method(value: Any) -> Any:
    """A method given as a name or a dict of its knobs (JSON) -> its config; a config (or
    anything else, for validate() to name) stays as it is."""
    if isinstance(value, str):
        return method_config(value)
    if isinstance(value, dict):
        knobs = dict(value)
        name = knobs.pop("name", "lora")
        if not isinstance(name, str) or name not in METHODS:
            raise ConfigError("method.name", name, "one of " + ", ".join(map(repr, METHODS)))
        return method_config(name, **{str(k): v for k, v in knobs.items()})
    return value
