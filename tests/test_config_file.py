"""A run as a file (issue 28): ``RunConfig.save`` / ``from_file`` in JSON and YAML, and
``ftlab train --config FILE [--set k=v]``.

Every preset, method and lab arm comes back from its file as the same config with the same
hash (the run cache's key); every way a file can be wrong is one ``ConfigFileError`` that
names the file, with the message the knob door (``replace``, ``--set``) gives for a value.
"""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import ftlab.labs as lab_modules
from ftlab.cli import build_parser, config_from_args
from ftlab.config import PRESETS, RunConfig
from ftlab.errors import ConfigError, ConfigFileError
from ftlab.labs import Lab
from ftlab.methods import METHODS
from tests.test_cli import ftlab as run_ftlab

SUFFIXES = (".json", ".yaml")


def _labs() -> list[type[Lab]]:
    """Every lab that declares arms, found by importing each module of ``ftlab.labs`` (a new
    lab is in the round trip without being listed here)."""
    for info in pkgutil.iter_modules(lab_modules.__path__):
        importlib.import_module(f"ftlab.labs.{info.name}")
    found, todo = [], list(Lab.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.presets or cls.arms:
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


def preset_configs() -> dict[str, RunConfig]:
    """Each method on each preset, as given and as a run resolves it; supervised and RL."""
    out = {}
    for method in METHODS:
        for rl in (False, True):
            for preset in ("auto", *PRESETS):
                cfg = RunConfig(method=method, preset=preset, rl=rl)
                name = f"{method}-{'rl-' if rl else ''}{preset}"
                out[name] = cfg
                for device in ("cpu", "cuda"):
                    out[f"{name}-resolved-{device}"] = cfg.resolved(device_type=device)
    return out


def lab_configs() -> dict[str, RunConfig]:
    """Every arm of every lab on every preset of that lab."""
    out = {}
    for cls in _labs():
        for preset in cls.presets or PRESETS:
            lab = cls(preset=preset)
            for arm in lab.arms:
                out[f"{cls.__name__}-{preset}-{arm}"] = lab.config(arm)
    return out


def odd_configs() -> dict[str, RunConfig]:
    """Values a file format may mangle: strings YAML 1.1 reads as numbers, booleans, null or
    times, text on several lines, floats whose last digit matters, every knob changed."""
    return {
        "strings-that-look-like-values": RunConfig(
            model="12:30", seed=2**31 - 1, device="cuda:1", dtype="bfloat16",
            method={"name": "prefix", "init": "text", "init_text": "on\n  # no comment: x"},
            data={"path": "1e-3", "task": "arithmetic", "format": "plain_qa"}),
        "more-strings": RunConfig(model="null", data={"path": "données/東京 ü.jsonl"},
                                  method={"name": "prompt", "init_text": "yes"}),
        "numbers": RunConfig(method={"name": "lora", "r": 256, "alpha": 0.1 + 0.2,
                                     "dropout": 0.9, "target_modules": "q,v"},
                             train={"learning_rate": 1e-7, "max_steps": 100_000,
                                    "warmup_steps": 3, "lr_scheduler": "cosine",
                                    "weight_decay": 1 / 3, "max_grad_norm": 1000.0,
                                    "report_to": "tensorboard,mlflow"},
                             eval={"every": 1, "early_stopping_patience": 2, "samples": 0},
                             save_weights=True),
        "rl-knobs": RunConfig(rl={"kl": 1e-3, "reward": "learned", "length_penalty": 1 / 60,
                                  "generations": 2}),
    }


ALL = {"presets": preset_configs, "labs": lab_configs, "odd": odd_configs}


def test_the_round_trip_covers_every_method_preset_and_lab():
    names = set(preset_configs())
    assert {f"{m}-{p}" for m in METHODS for p in ("auto", *PRESETS)} <= names
    assert {c.__name__ for c in _labs()} >= {"Collapse", "FormatMismatch", "MethodsLab",
                                             "Overfitting", "Regression", "RewardHacking"}
    assert len(lab_configs()) > 50


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("group", list(ALL))
def test_a_config_comes_back_from_its_file_with_the_same_hash(tmp_path, group, suffix):
    for name, cfg in ALL[group]().items():
        path = cfg.save(tmp_path / f"{name}{suffix}")
        back = RunConfig.from_file(path)
        assert back == cfg, name
        assert back.hash() == cfg.hash(), name
        assert back.to_dict() == cfg.to_dict(), name


def test_a_run_folder_config_json_is_a_config_file(tmp_path):
    cfg = RunConfig(method="qlora", model="tiny").resolved(device_type="cpu")
    folder = tmp_path / "run-1"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))  # as RunWriter
    assert RunConfig.from_file(folder) == cfg
    assert RunConfig.from_file(folder / "config.json").hash() == cfg.hash()


def test_a_hand_written_file_gives_only_what_it_changes(tmp_path):
    path = tmp_path / "run.yml"
    path.write_text("method: qlora\ntrain:\n  learning_rate: 1e-4   # YAML 1.1 reads a str\n"
                    "  max_steps: 2.0\nrl: on\n", encoding="utf-8")
    cfg = RunConfig.from_file(path)
    assert cfg == RunConfig(method="qlora").replace(rl=True, lr=1e-4, steps=2)
    assert cfg.train.max_steps == 2 and type(cfg.train.max_steps) is int  # the same hash
    (tmp_path / "run.json").write_text('{"method": {"name": "lora", "r": 4}}')
    assert RunConfig.from_file(tmp_path / "run.json") == RunConfig().replace(r=4)


# -- bad input: one ConfigFileError naming the file, and what to do ---------------------------
def _error(tmp_path, name: str, text: str | bytes) -> ConfigFileError:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigFileError) as info:
        RunConfig.from_file(path)
    assert str(info.value).startswith(str(path))
    return info.value


@pytest.mark.parametrize(("knobs", "changes"), [
    ({"sede": 1}, None),  # unknown keys: the message of a dict (from_dict)
    ({"train": {"lerning_rate": 0.1}}, None),
    ({"method": {"name": "lora", "num_virtual_tokens": 5}}, None),
    ({"train": {"max_steps": "ten"}}, {"train.max_steps": "ten"}),  # wrong type
    ({"train": {"max_steps": 2.5}}, {"train.max_steps": 2.5}),
    ({"method": {"name": "lora", "r": 0}}, {"method.r": 0}),  # out of range
    ({"data": {"format": "Chat"}}, {"data.format": "Chat"}),
    ({"device": "gpu"}, {"device": "gpu"}),
    ({"rl": "maybe"}, {"rl": "maybe"}),
    ({"rl": {"kl": 0}}, {"rl": True, "rl.kl": 0}),
])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_bad_knob_is_refused_with_the_message_of_the_knob_door(tmp_path, knobs, changes,
                                                                 suffix):
    """The file adds its name; the rest is what a dict (``from_dict``) and, for a value,
    ``replace`` and ``--set`` say: one door, one message."""
    import yaml

    text = json.dumps(knobs) if suffix == ".json" else yaml.safe_dump(knobs)
    error = _error(tmp_path, f"run{suffix}", text)
    with pytest.raises(ConfigError) as door:
        RunConfig.from_dict(knobs).validate()
    assert str(error) == f"{tmp_path / f'run{suffix}'}: {door.value}"
    assert error.field == door.value.field and isinstance(error.__cause__, ConfigError)
    if changes is not None:
        with pytest.raises(ConfigError) as replaced:
            RunConfig().replace(**changes).validate()
        assert str(replaced.value) == str(door.value)


def test_an_unknown_key_names_its_close_match(tmp_path):
    error = _error(tmp_path, "run.json", '{"train": {"lerning_rate": 0.1}}')
    assert error.field == "train.lerning_rate" and "Did you mean 'learning_rate'" in str(error)
    error = _error(tmp_path, "run.yaml", "sede: 3\n")
    assert error.field == "sede" and "'seed'" in str(error)


def test_a_json_syntax_error_gives_its_line_and_column(tmp_path):
    error = _error(tmp_path, "run.json", '{\n  "seed": 1,\n  "model": \n}\n')
    assert (error.line, error.column) == (4, 1)
    assert "line 4, column 1: is not valid JSON (Expecting value)" in str(error)
    assert "RunConfig.save" in str(error)


def test_a_yaml_syntax_error_gives_its_line_and_column(tmp_path):
    error = _error(tmp_path, "run.yaml", "seed: 1\ntrain:\n  max_steps: [2\nmodel: tiny\n")
    assert error.line is not None and error.line >= 3 and error.column is not None
    assert f"line {error.line}, column {error.column}: is not valid YAML" in str(error)


@pytest.mark.parametrize(("name", "text", "phrase"), [
    ("run.json", "", "not valid JSON"),
    ("run.yaml", "", "holds nothing (it is empty)"),
    ("run.yaml", "# only a comment\n", "holds nothing, not a mapping"),
    ("run.json", "[1, 2]", "holds a list, not a mapping of RunConfig's fields"),
    ("run.yaml", "- lora\n", "holds a list, not a mapping"),
    ("run.json", '"lora"', "holds a str, not a mapping"),
    ("run.json", '{"seed": 1, "seed": 2}', "names the key 'seed' twice"),
    ("run.yaml", "seed: 1\nseed: 2\n", "the key 'seed' is given twice"),
    ("run.yaml", "!!python/object/apply:os.system ['echo hacked']\n", "not valid YAML"),
    ("run.yaml", "a: 1\n---\nb: 2\n", "not valid YAML"),
    ("run.json", b'{"model": "\xff"}', "is not UTF-8 text"),
    ("run.json", "[" * 100_000, "ftlab can read (RecursionError"),
    ("run.json", '{"seed": ' + "9" * 5000 + "}", "ftlab can read (ValueError"),
])
def test_a_file_that_holds_no_config_is_named(tmp_path, name, text, phrase):
    assert phrase in str(_error(tmp_path, name, text))


def test_a_missing_file_or_a_folder_without_config_json_is_named(tmp_path):
    with pytest.raises(ConfigFileError, match=r"nosuch\.yaml: no such file\. Check the path"):
        RunConfig.from_file(tmp_path / "nosuch.yaml")
    with pytest.raises(ConfigFileError) as info:
        RunConfig.from_file(tmp_path)
    assert str(info.value) == (f"{tmp_path}: is a folder without a config.json. Give a config "
                               "file (.json, .yaml or .yml, as RunConfig.save writes) or a "
                               "run folder.")
    for bad in (5, None, "", b"run.json"):
        with pytest.raises(ConfigError, match="path = .* expected a file path"):
            RunConfig.from_file(bad)


def test_save_writes_only_valid_configs_to_files_named_by_format(tmp_path):
    cfg = RunConfig()
    cfg.train.max_steps = 0  # an attribute set is checked by validate, before writing
    with pytest.raises(ConfigError, match="train.max_steps = 0"):
        cfg.save(tmp_path / "run.json")
    assert not (tmp_path / "run.json").exists()
    with pytest.raises(ConfigFileError, match=r"run\.txt: has the suffix '\.txt'"):
        RunConfig().save(tmp_path / "run.txt")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ConfigFileError, match=r"dir\.json: is a folder"):
        RunConfig().save(tmp_path / "dir.json")
    path = RunConfig().save(tmp_path / "new" / "folder" / "run.YML")  # folders made
    assert path.read_text(encoding="utf-8").startswith("model: ")
    assert not list(path.parent.glob(".*.tmp"))


# -- the CLI ----------------------------------------------------------------------------------
def _args(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_flags_and_set_win_over_the_config_file(tmp_path):
    cfg = RunConfig(method={"name": "lora", "r": 16}, model="tiny", seed=4).replace(lr=3e-4)
    path = cfg.save(tmp_path / "run.yaml")
    assert _args("--config", str(path)) == cfg
    assert _args("--config", str(path), "--steps", "3", "--set", "alpha=8") == cfg.replace(
        steps=3, alpha=8.0)
    assert _args("--config", str(path), "--steps", "3", "--set", "steps=5").train.max_steps == 5
    assert _args("--config", str(path), "--method", "prompt") == cfg.replace(method="prompt")
    assert _args("--method", "prompt") == RunConfig(method="prompt")  # no file: as before
    assert _args() == RunConfig()


def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path):
    out = run_ftlab("train", "--config", str(tmp_path / "nosuch.json"), "--json")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert json.loads(out.stdout) == {
        "error": f"{tmp_path / 'nosuch.json'}: no such file. Check the path; "
                 "RunConfig(...).save(path) writes a config file, and every run folder "
                 "holds one (config.json).", "type": "ConfigFileError"}


def test_train_config_file_with_set_writes_that_run(tmp_path):
    cfg = RunConfig(model="tiny", preset="cpu", seed=1, data={"size": 20},
                    eval={"samples": 0}).replace(steps=5).resolved(device_type="cpu")
    path = cfg.save(tmp_path / "run.yaml")
    out = run_ftlab("train", "--config", str(path), "--set", "train.max_steps=2", "--json",
                "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["status"] == "completed" and res["steps"] == 2
    expected = cfg.replace(**{"train.max_steps": 2})
    assert RunConfig.from_file(res["run_dir"]) == expected  # the run folder is a config file
    assert RunConfig.from_file(res["run_dir"]).hash() == expected.hash()
    assert _args("--config", res["run_dir"]) == expected
