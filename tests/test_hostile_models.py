"""Hostile input to models, chat, the panel, data files and the environment (issue 31,
group 6): each is refused or warned about by name, never a raw error or a silent choice.

Only the tiny model is loaded; a damaged model folder is a copy of the tiny model's cache
with one file cut.
"""

import json
import shutil
import warnings
from pathlib import Path

import pytest

import ftlab
from ftlab.cli import main as cli_main
from ftlab.data import jsonl as jsonl_module
from ftlab.data import load_splits
from ftlab.errors import ConfigError
from ftlab.models import ModelDamagedError, load_model, load_tokenizer, tiny_model_dir
from ftlab.threads import ThreadsWarning, configure
from ftlab.widgets import ControlPanel
from ftlab.widgets.chat import ChatView


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A model folder of this learner's own: the tiny model saved elsewhere."""
    folder = tmp_path / "my_model"
    shutil.copytree(tiny_model_dir(), folder)
    return folder


@pytest.mark.parametrize("name, why", [
    ("config.json", r"not valid JSON: Unterminated string"),
    ("model.safetensors", r"cut: [\d,]+ bytes where its header says [\d,]+"),
])
def test_a_cut_file_in_a_model_folder_is_named_with_what_to_do(model_copy, name, why):
    _cut(model_copy / name)
    msg = (rf"the folder's {name} is damaged \({why}.*\), so .*my_model/{name} cannot be "
           r"loaded\. Copy or save the model into that folder again \(save_pretrained\)")
    with pytest.raises(ModelDamagedError, match=msg) as info:
        load_model(str(model_copy))
    assert "no such folder" not in str(info.value)
    with pytest.raises(ModelDamagedError, match=msg):
        load_tokenizer(str(model_copy))


def test_a_cut_file_in_the_tiny_models_cache_says_to_delete_it_and_prepare_again(
        tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_model_dir(), cache / "tiny-llama")
    monkeypatch.setenv("FTLAB_CACHE", str(cache))
    load_model("tiny")  # the copy loads
    _cut(cache / "tiny-llama" / "model.safetensors")
    with pytest.raises(ModelDamagedError) as info:
        load_model("tiny")
    text = str(info.value)
    assert text.startswith("Model 'tiny': the folder's model.safetensors is damaged (cut: ")
    assert (f"It is ftlab's own copy of the tiny model: delete the folder {cache / 'tiny-llama'}"
            " and run `python -m ftlab prepare`") in text


def test_ftlab_eval_of_a_run_whose_model_folder_was_cut_is_one_clear_line(
        model_copy, runs_dir, capsys):
    cfg = ftlab.RunConfig(model=str(model_copy), preset="cpu", save_weights=True).replace(
        size=10, steps=1, batch_size=2, **{"eval.samples": 0})
    run = ftlab.train(cfg, progress=False)
    _cut(model_copy / "model.safetensors")
    assert cli_main(["eval", "--suite", "task", "--run", str(run.path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ftlab: error: Model ")
    assert "model.safetensors is damaged (cut: " in err[0] and "internal error" not in err[0]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny")


def test_an_empty_chat_message_is_one_line_and_loses_nothing(tiny):
    model, tok = tiny
    chat = ChatView(model, tok, base=model, max_new_tokens=2)
    chat.ask("2 + 2?")
    before = (list(chat.history), chat.transcript.value)
    for empty in ("", "   ", None):
        with pytest.raises(ConfigError, match="expected a question in words. Type something "
                           "to ask; the transcript is unchanged") as info:
            chat.ask(empty)
        assert info.value._render_traceback_() == [f"ConfigError: {info.value}"]  # no traceback
    assert (chat.history, chat.transcript.value) == before


def test_a_chat_without_a_model_says_the_cached_run_has_none_and_how_to_get_one(tiny):
    with pytest.raises(ConfigError, match=r"model = None is not allowed: expected a loaded "
                       r"model to chat with\. A run read back from the run cache has no model "
                       r"in memory .*model_of\(run\)"):
        ChatView(None, None)
    with pytest.raises(ConfigError, match="tok = None is not allowed"):
        ChatView(tiny[0], None, base=tiny[0])


def test_panel_run_refuses_an_unknown_method_as_panel_set_does(runs_dir):
    panel = ControlPanel(ftlab.RunConfig(model="tiny", preset="cpu"), runs_dir=runs_dir)
    with pytest.raises(ConfigError) as by_set:
        panel.set(method="nosuch")
    with pytest.raises(ConfigError) as by_run:
        panel.run(method="nosuch", steps=1)
    assert str(by_run.value) == str(by_set.value)
    assert str(by_run.value).startswith("method = 'nosuch' is not allowed: expected one of "
                                        "this panel's methods: ")
    assert not panel.running and not runs_dir.exists()


def test_a_big_jsonl_file_keeps_data_size_rows_and_shows_its_reading(tmp_path, monkeypatch,
                                                                      capsys):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{i} + {i}?", "completion": str(2 * i)})
                            + "\n" for i in range(3000)))
    monkeypatch.setattr(jsonl_module, "PROGRESS_BYTES", 1000)  # this file counts as big
    cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(
        size=40, **{"data.path": str(path), "data.val_size": 8})
    splits = load_splits(cfg.resolved())
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (40, 8, 600)
    assert "Reading big.jsonl" in capsys.readouterr().err
    whole = load_splits(cfg.replace(size=None, **{"data.val_size": None}))  # unresolved: all
    assert (len(whole.train), len(whole.validation)) == (1800, 600)
    assert splits.train == whole.train[:40]  # the same shuffle, its first rows


@pytest.mark.parametrize("variable, value", [("OMP_NUM_THREADS", "0"),
                                             ("OMP_NUM_THREADS", "abc"),
                                             ("FTLAB_THREADS", "-3"),
                                             ("FTLAB_THREADS", "abc")])
def test_a_thread_setting_that_is_not_one_is_named_and_read_as_unset(variable, value):
    env = {variable: value}
    with pytest.warns(ThreadsWarning, match=rf"^{variable} = '{value}' is not a .*expected .*"
                      "whole number of .*at least 1"):
        choice = configure(env, cpus=(2, 4), torch_loaded=False)
    assert choice["threads"] == 2 and choice["adapt"] is True  # as if unset
    assert env.get("OMP_NUM_THREADS") == "2"  # OpenMP reads ftlab's count, not the bad one


@pytest.mark.parametrize("env", [{}, {"OMP_NUM_THREADS": "3"}, {"OMP_NUM_THREADS": "4,1"},
                                 {"FTLAB_THREADS": "off"}, {"FTLAB_THREADS": "2"},
                                 {"FTLAB_THREADS": " Auto "}, {"OMP_NUM_THREADS": ""}])
def test_thread_settings_that_are_settings_pass_quietly(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ThreadsWarning)
        configure(dict(env), cpus=(2, 4), torch_loaded=False)


def test_an_empty_home_is_read_as_unset_and_said_so(monkeypatch):
    from ftlab.models import cache_dir

    monkeypatch.delenv("FTLAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", "")
    with pytest.warns(UserWarning, match="HOME is set but empty; ftlab reads it as unset"):
        folder = cache_dir()
    assert folder != Path("/.cache/ftlab") and folder.parts[-2:] == (".cache", "ftlab")
    monkeypatch.delenv("HOME")
    assert cache_dir() == folder  # the same folder as with HOME unset
