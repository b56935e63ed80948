"""The embedded default loads without any hub; other specs fail with a useful message."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ftlab import ModelNotFoundError, load_model
from ftlab.errors import MissingDependencyError
from ftlab.generation import generate_answers
from ftlab.models import choose_placement


@pytest.mark.slow
def test_embedded_default_is_smollm2_135m_and_answers():
    model, tok = load_model()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert next(model.parameters()).dtype == torch.float32  # CPU default
    [ans] = generate_answers(model, tok, [[{"role": "user",
                                            "content": "What is the capital of France?"}]],
                             max_new_tokens=12)
    assert "Paris" in ans.text and ans.stopped


def test_tiny_model_shares_the_default_tokenizer():
    model, tok = load_model("tiny")
    assert model.config.num_hidden_layers == 2
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == 2


def test_dtype_can_be_overridden():
    model, _ = load_model("tiny", dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert choose_placement("cpu", "auto").dtype == torch.float32


def test_missing_hub_model_names_the_embedded_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="embedded default 'smollm2-135m'"):
        load_model("someone/no-such-model-here")


def test_folder_without_a_model_says_what_is_missing(tmp_path):
    with pytest.raises(ModelNotFoundError, match="holds no config.json"):
        load_model(str(tmp_path))


def test_qlora_without_bitsandbytes_says_how_to_install(monkeypatch):
    import ftlab

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match="pip install bitsandbytes"):
        ftlab.QLora().quantization(choose_placement("cpu"))


@pytest.mark.slow
def test_two_processes_converting_at_once_both_get_a_complete_model(tmp_path):
    code = textwrap.dedent("""
        from ftlab.models import embedded_model_dir
        from transformers import AutoConfig
        print(AutoConfig.from_pretrained(embedded_model_dir()).num_hidden_layers)
    """)
    env = dict(os.environ, FTLAB_CACHE=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs == ["30", "30"]
    assert sorted(x.name for x in tmp_path.iterdir() if not x.name.endswith(".lock")) == [
        "smollm2-135m-instruct"]  # no half-written folder left behind
