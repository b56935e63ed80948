"""Exporting a run: each format is loaded back and answers as the run's model does.

The real embedded model is exported as a LoRA run in all three formats (adapter, merged,
GGUF q8_0); the lossless ones must answer token for token as the run's model (``export``
refuses otherwise) and the q8_0 agreement is printed and held above a floor that a broken
writer would miss. The tiny model covers GGUF f32 (lossless), the refusals and bad input.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import ftlab
from ftlab import gguf_export
from ftlab.cli import main
from ftlab.engine import train
from ftlab.errors import ConfigError, EnvPathError, RunFolderError
from ftlab.export import ExportError, export

Q8_FLOOR = 0.5  # share of answer tokens before the first difference; a writer that gets
# the layout wrong (no rotary regrouping, a misnamed tensor) answers nonsense: ~0


def _run(tmp_path_factory, model: str, method: str, steps: int = 2, save: bool = True):
    cfg = ftlab.RunConfig(model=model, method=method, preset="cpu", save_weights=save).replace(
        max_steps=steps, size=16, val_size=8, every=steps, samples=0)
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory):
    return _run(tmp_path_factory, "tiny", "lora")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_lora_run_of_the_real_model_exports_in_every_format(tmp_path_factory, tmp_path):
    run = _run(tmp_path_factory, "smollm2-135m", "lora")
    for fmt in ("adapter", "merged"):
        done = export(run.path, tmp_path / fmt, fmt)  # from the folder, as a later session
        assert done.check.lossless and done.check.identical == done.check.total == 4, done
        assert (done.path / "README.md").is_file()
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert "chat_template" in (tmp_path / "merged" / "tokenizer_config.json").read_text() or (
        tmp_path / "merged" / "chat_template.jinja").is_file()
    q8 = export(run, tmp_path / "gguf", "gguf", quant="q8_0")  # the live run
    print(f"q8_0 against the run's model: {q8.check}")
    assert not q8.check.lossless and q8.check.agreement >= Q8_FLOOR, q8
    assert (tmp_path / "gguf" / "model-q8_0.gguf").stat().st_size < 0.3 * (
        tmp_path / "merged" / "model.safetensors").stat().st_size
    card = (tmp_path / "gguf" / "README.md").read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert f"| validation loss, final | {run.final['final_val_loss']:.4g} |" in card
    assert str(q8.check) in card


def test_gguf_f32_is_lossless_and_a_writer_bug_is_caught_and_cleaned_up(
        tiny_lora, tmp_path, monkeypatch):
    done = export(tiny_lora, tmp_path / "f32", "gguf", quant="f32")
    assert done.check.lossless and done.check.identical == done.check.total
    # the query/key rows not regrouped for llama.cpp's rotary layout: answers change
    monkeypatch.setattr(gguf_export, "rope_permute", lambda w, n_head: w)
    with pytest.raises(ExportError, match="does not reproduce the run's answers"):
        export(tiny_lora, tmp_path / "broken", "gguf", quant="f32")
    assert list((tmp_path / "broken").iterdir()) == []


def test_prefix_and_prompt_tuning_refuse_to_merge_in_one_line(tmp_path_factory, tmp_path):
    run = _run(tmp_path_factory, "tiny", "prefix", steps=1)
    for fmt in ("merged", "gguf"):
        with pytest.raises(ConfigError, match="cannot be merged.*Export the adapter"):
            export(run, tmp_path / fmt, fmt)
        assert not (tmp_path / fmt).exists()
    done = export(run, tmp_path / "adapter", "adapter")
    assert done.check.identical == done.check.total


def test_a_full_fine_tune_has_no_adapter(tmp_path_factory, tmp_path):
    run = _run(tmp_path_factory, "tiny", "full", steps=1, save=False)
    with pytest.raises(ConfigError, match="no adapter"):
        export(run, tmp_path / "a", "adapter")
    done = export(run, tmp_path / "m", "merged")  # the live model: no weights needed
    assert done.check.identical == done.check.total


def test_a_folder_that_holds_files_is_refused_unless_told(tiny_lora, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    before = _digest(target)
    with pytest.raises(EnvPathError, match="already holds 1 file.*overwrite=True"):
        export(tiny_lora, target, "adapter")
    assert _digest(target) == before
    done = export(tiny_lora, target, "adapter", overwrite=True)
    assert (target / "notes.txt").read_text() == "mine" and done.check.identical == 4


def test_a_path_that_is_a_file_is_refused_and_left_alone(tiny_lora, tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"keep me")
    with pytest.raises(EnvPathError, match="is a file, not a folder"):
        export(tiny_lora, f, "merged")
    assert f.read_bytes() == b"keep me"


def test_a_damaged_run_folder_is_named(tiny_lora, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_lora.path, copy)
    weights = next((copy / "weights").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a save cut by a full disk
    with pytest.raises(RunFolderError, match=r"weights/adapter_model.safetensors is cut"):
        export(copy, tmp_path / "out", "adapter")
    assert not (tmp_path / "out").exists()
    (copy / "config.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="config.json"):
        export(copy, tmp_path / "out", "adapter")


def test_a_run_saved_without_weights_says_how_to_get_them(tmp_path_factory, tmp_path):
    run = _run(tmp_path_factory, "tiny", "lora", steps=1, save=False)
    with pytest.raises(ExportError, match="saved no weights.*save_weights=True"):
        export(run.path, tmp_path / "out", "adapter")
    assert not (tmp_path / "out").exists()
    # the model in memory (model_of retrains a cached run) goes with the folder's record
    done = export(run.path, tmp_path / "out", "adapter", model=run.model,
                  tokenizer=run.tokenizer)
    assert done.check.identical == done.check.total


def test_unknown_formats_are_refused_before_anything_loads(tiny_lora, tmp_path):
    with pytest.raises(ConfigError, match="format = 'onnx'"):
        export(tiny_lora, tmp_path / "o", "onnx")
    with pytest.raises(ConfigError, match="quant = 'q4_0'"):
        export(tiny_lora, tmp_path / "o", "gguf", quant="q4_0")
    with pytest.raises(ConfigError, match="run = 42"):
        export(42, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_the_command_line_exports_and_refuses_in_one_line(tiny_lora, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["export", str(tiny_lora.path), "--format", "merged", "--out", str(out),
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["identical"] == got["answers"] == 4 and "README.md" in got["files"]
    assert main(["export", str(tiny_lora.path), "--format", "merged", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds" in err[0] and "Traceback" not in err[0]


def test_the_chat_views_export_button_writes_and_shows_problems_in_one_line(tiny_lora,
                                                                             tmp_path):
    from ftlab.widgets.chat import ChatView

    view = ChatView(tiny_lora.model, tiny_lora.tokenizer, run=tiny_lora)
    assert list(view.export_format.options) == ["adapter", "merged", "gguf"]
    view.export_format.value = "merged"
    assert view.export_quant.layout.display == "none"  # weights only for GGUF
    view.export_folder.value = str(tmp_path / "from-button")
    view.export_clicked().join(60)
    assert "4/4 held-out answers token-identical" in view.export_status.value
    assert (tmp_path / "from-button" / "README.md").is_file()
    before = _digest(tmp_path / "from-button")
    view.export_clicked().join(60)  # the same folder again: refused, shown, nothing lost
    assert "EnvPathError" in view.export_status.value and "overwrite" in view.export_status.value
    assert _digest(tmp_path / "from-button") == before and not view.export_button.disabled
