"""A model card for an export, generated from its run folder.

It answers what a model hub's card template asks (base model, how it was trained and on
what, how it was evaluated, with what software, how to use it, its limits), with the
run's own numbers. The YAML header carries the fields hubs index (``base_model``,
``library_name``, ``license``, ``tags``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runs import Run

Export = Any  # ftlab.export.Export (not imported: export imports this module)

EMBEDDED_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the embedded GGUF's source model
EMBEDDED_LICENSE = "apache-2.0"


def _base(run: Run) -> tuple[str, str | None]:
    from .models import EMBEDDED_ALIASES

    spec = run.config.model
    if spec in EMBEDDED_ALIASES:
        return EMBEDDED_BASE, EMBEDDED_LICENSE
    return spec, None


def _flat(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _number(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _usage(export: Export, base: str) -> str:
    if export.format == "adapter":
        return ("```python\nfrom peft import PeftModel\nfrom transformers import "
                f"AutoModelForCausalLM, AutoTokenizer\n\nbase = AutoModelForCausalLM."
                f"from_pretrained({base!r})\nmodel = PeftModel.from_pretrained(base, "
                f"{str(export.path)!r})\ntok = AutoTokenizer.from_pretrained("
                f"{str(export.path)!r})\n```\n\nIn ftlab the base is "
                "`ftlab.models.load_model(...)` of the run's model spec.")
    if export.format == "merged":
        return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f"model = AutoModelForCausalLM.from_pretrained({str(export.path)!r})\n"
                f"tok = AutoTokenizer.from_pretrained({str(export.path)!r})\n```")
    name = next((f for f in export.files if f.endswith(".gguf")), f"model-{export.quant}.gguf")
    return (f"llama.cpp: `llama-cli -m {name} -cnv` (the chat template is in the file).\n\n"
            f"Ollama: a `Modelfile` holding `FROM ./{name}`, then "
            "`ollama create my-model -f Modelfile`.\n\n"
            "transformers: `AutoModelForCausalLM.from_pretrained(folder, gguf_file="
            f"{name!r})` (it dequantizes to float32).")


def card_text(run: Run, export: Export, verdict: str | None = None) -> str:
    """The card's Markdown, from the run's config, result, environment and the export."""
    cfg, final, env = run.config, run.final, run.env
    base, license_ = _base(run)
    method = cfg.method.name
    library = {"adapter": "peft", "merged": "transformers", "gguf": "gguf"}[export.format]
    tags = ["ftlab", method, cfg.data.task if cfg.data.path is None else "custom-data"]
    if cfg.rl is not None:
        tags.append("grpo")
    head = ["---", f"base_model: {base}", f"library_name: {library}"]
    head += [f"license: {license_}"] if license_ else []
    head += ["tags:"] + [f"- {t}" for t in tags] + ["---", ""]

    data = (f"the user's file `{cfg.data.path}`" if cfg.data.path else
            f"ftlab's generated task `{cfg.data.task}` (seed {cfg.seed})")
    trainer = "GRPO (TRL) against a reward" if cfg.rl is not None else "supervised fine-tuning"
    lines = head + [
        f"# {run.name}", "",
        f"{method} fine-tune of `{base}`, trained with [ftlab](https://pypi.org/project/ftlab/)"
        f" by {trainer}, exported as **{export.format}**"
        + (f" ({export.quant})" if export.quant else "") + ".", "",
        "## Training", "",
        f"- Data: {data}; {cfg.data.size} training rows, {cfg.data.val_size} held out, "
        f"format `{cfg.data.format}`"
        + (f", {cfg.data.corruption_rate:.0%} corrupted as `{cfg.data.corruption}`"
           if cfg.data.corruption_rate else "") + ".",
        f"- Steps: {final.get('steps')} of {cfg.train.max_steps}, batch "
        f"{cfg.train.batch_size}, learning rate {cfg.train.learning_rate}; status "
        f"`{run.status}`.",
        f"- Trainable parameters: {final.get('params', {}).get('trainable')} of "
        f"{final.get('params', {}).get('total')}.",
        f"- Device: {final.get('device', env.get('device'))}, {final.get('dtype')}; wall "
        f"time {_number(final.get('wall_s'))} s.", "",
        "<details><summary>Every setting of the run (its config.json)</summary>", "",
        "| setting | value |", "|---|---|",
        *[f"| `{k}` | `{v}` |" for k, v in _flat(cfg.to_dict())], "", "</details>", "",
        "## Results (measured in the run)", "",
        "| measure | value |", "|---|---|",
    ]
    rows = [("validation loss, first evaluation", final.get("first_val_loss")),
            ("validation loss, final", final.get("final_val_loss")),
            ("validation loss, best", final.get("best_val_loss")),
            ("training loss, last step", final.get("train_loss"))]
    rows += [(f"{k}, final", v) for k, v in (final.get("final_metrics") or {}).items()
             if isinstance(v, (int, float))]
    lines += [f"| {k} | {_number(v)} |" for k, v in rows if v is not None]
    lines += [""]
    if verdict:
        lines += ["## Lab verdict", "", "```text", verdict.strip(), "```", ""]
    lines += ["## Export check", ""]
    if export.check is None:
        lines += ["Not checked (exported with `check=False`).", ""]
    else:
        kind = ("lossless: the answers must be identical" if export.check.lossless else
                "the weights are rounded, so answers may differ")
        lines += [f"Loaded back and compared with the run's model on held-out prompts "
                  f"(greedy, up to 32 tokens): {export.check} ({kind}).", ""]
    lines += ["## How to use", "", _usage(export, base), "",
              "## Environment", "",
              f"Python {env.get('python')}, ftlab revision `{env.get('git_revision')}`.", "",
              "| package | version |", "|---|---|",
              *[f"| {k} | {v} |" for k, v in (env.get("packages") or {}).items()], "",
              "## Limitations", "",
              f"A {base.split('/')[-1]} model fine-tuned briefly on a small task for teaching: "
              "it answers the task it was trained on and may do worse on others "
              "(ftlab's capability-regression lab measures how much). Not for production "
              "use.", ""]
    return "\n".join(lines)


def write_card(run: Run, export: Export, folder: Path, verdict: str | None = None) -> Path:
    path = Path(folder) / "README.md"
    path.write_text(card_text(run, export, verdict), encoding="utf-8")
    return path
