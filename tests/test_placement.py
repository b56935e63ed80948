"""Placement's precision on each GPU generation, without a GPU: the compute capability comes
through one seam (``models.cuda_capability``); fp16 placement means fp16 mixed precision
(fp32 weights, the trainer's ``fp16=True``) everywhere a trainer is built."""

from __future__ import annotations

import pytest
import torch

from ftlab import models
from ftlab.arguments import bf16, fp16, trainer_arguments
from ftlab.errors import ConfigError
from ftlab.models import Placement, choose_placement

F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16
# capability -> what dtype='auto' picks; explicit dtypes are honoured everywhere on CUDA
AUTO = {
    (6, 1): F32,  # Pascal: no tensor cores, 16-bit is not faster
    (7, 0): F16,  # V100: bf16 only emulated
    (7, 5): F16,  # T4
    (8, 0): BF16,  # A100: native bf16
    (8, 6): BF16,  # RTX 30xx, A10
    (9, 0): BF16,  # H100
}


@pytest.fixture
def gpu(monkeypatch):
    """A visible CUDA GPU of the compute capability the test sets (``gpu(7, 5)``)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def set_capability(major: int, minor: int) -> None:
        monkeypatch.setattr(models, "cuda_capability", lambda device: (major, minor))

    return set_capability


@pytest.mark.parametrize("cap", list(AUTO))
def test_auto_picks_bf16_only_where_it_is_native(gpu, cap):
    gpu(*cap)
    p = choose_placement("auto", "auto")
    assert p.device == "cuda" and p.dtype == AUTO[cap]
    assert f"compute capability {cap[0]}.{cap[1]}" in p.reason
    if AUTO[cap] == F16:
        assert p.reason.startswith("fp16 with loss scaling") and "emulates bf16" in p.reason
        assert p.weight_dtype == F32  # fp32 masters: loss scaling needs them
    elif AUTO[cap] == BF16:
        assert p.reason.startswith("bf16") and "natively" in p.reason
        assert p.weight_dtype == BF16
    else:
        assert "no tensor cores" in p.reason and p.weight_dtype == F32


@pytest.mark.parametrize("cap", list(AUTO))
@pytest.mark.parametrize("dtype,expected", [("float32", F32), ("bfloat16", BF16),
                                            ("float16", F16)])
def test_an_explicit_dtype_is_honoured_and_the_reason_says_its_cost(gpu, cap, dtype,
                                                                      expected):
    gpu(*cap)
    p = choose_placement("cuda", dtype)
    assert p.dtype == expected and "as configured" in p.reason
    assert p.weight_dtype == (F32 if expected == F16 else expected)
    if dtype == "bfloat16":
        assert ("only emulates it" in p.reason) == (cap < (8, 0))
    if dtype == "float16":
        assert ("no tensor cores" in p.reason) == (cap < (7, 0))


def test_the_cpu_computes_in_fp32_and_refuses_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda *a: pytest.fail("read a GPU"))
    for device in ("auto", "cpu"):
        p = choose_placement(device, "auto")
        assert (p.device, p.dtype) == ("cpu", F32) and "the CPU" in p.reason
    assert choose_placement("cpu", "float32").dtype == F32
    assert choose_placement("cpu", "bfloat16").dtype == BF16  # as before: weights in bf16
    with pytest.raises(ConfigError, match="dtype = 'float16'.*GPU feature"):
        choose_placement("cpu", "float16")


def test_mps_stays_fp32_unless_told(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    p = choose_placement("auto", "auto")
    assert (p.device, p.dtype) == ("mps", F32) and "MPS" in p.reason
    assert choose_placement("mps", "float16").weight_dtype == F32  # mixed precision there too


def test_the_seam_is_the_only_gpu_read(monkeypatch):
    """Without a patched seam the real one answers: None off CUDA."""
    assert models.cuda_capability("cpu") is None and models.cuda_capability("mps") is None
    if not torch.cuda.is_available():
        assert models.cuda_capability("cuda") is None


def test_a_fp16_placement_loads_fp32_weights(gpu, monkeypatch):
    """load_model gives fp16 placement fp32 master weights (bf16 stays bf16)."""
    from transformers import AutoModelForCausalLM

    seen = []

    class Loaded:
        generation_config = type("G", (), {})()

        def to(self, device):
            return self

    def fake(source, **kwargs):
        seen.append(kwargs["dtype"])
        return Loaded()

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake)
    for cap, weights in (((7, 5), F32), ((8, 0), BF16)):
        gpu(*cap)
        models.load_model("tiny")
        assert seen[-1] == weights


def _placement(dtype: torch.dtype, device: str = "cuda") -> Placement:
    return Placement(device, dtype, "test")


def test_trainer_arguments_use_fp16_mixed_precision_for_a_fp16_placement(tmp_path):
    from transformers import TrainingArguments

    def args(p, **more):
        return trainer_arguments(TrainingArguments, output_dir=str(tmp_path), max_steps=1,
                                 batch_size=1, learning_rate=1e-4, seed=0, placement=p, **more)

    a = args(_placement(F16))
    assert (a.fp16, a.bf16, a.mixed_precision) == (True, False, "fp16")
    assert (fp16(_placement(F16)), bf16(_placement(F16))) == (True, False)
    assert (fp16(_placement(BF16)), bf16(_placement(BF16))) == (False, True)
    a = args(_placement(F32, "cpu"))
    assert (a.fp16, a.bf16) == (False, False)


def test_the_supervised_trainer_gets_fp16_true_bf16_false(monkeypatch, tmp_path):
    """SupervisedPart.build, with the trainer replaced: no model, no training."""
    import transformers

    from ftlab.config import RunConfig
    from ftlab.engine import supervised

    captured = {}

    class FakeTrainer:
        def __init__(self, args=None, **kwargs):
            captured["args"] = args

        def remove_callback(self, cb):
            pass

    monkeypatch.setattr(transformers, "Trainer", FakeTrainer)
    monkeypatch.setattr(supervised, "accepts_logits_to_keep", lambda model: False)
    monkeypatch.setattr(supervised, "Collator", lambda tok, tail: None)
    part = supervised.SupervisedPart(RunConfig(method="lora").resolved("cuda"),
                                     _placement(F16), {})
    part.train_rows = part.val_rows = []
    part.build([], tmp_path)
    assert (captured["args"].fp16, captured["args"].bf16) == (True, False)


def test_the_grpo_trainer_gets_fp16_true_bf16_false(monkeypatch, tmp_path):
    import trl

    from ftlab.config import RunConfig
    from ftlab.engine import policy
    from ftlab.rlhf import make_prompts

    captured = {}

    class FakeGRPO:
        def __init__(self, args=None, **kwargs):
            captured["args"] = args

        def remove_callback(self, cb):
            pass

    monkeypatch.setattr(trl, "GRPOTrainer", FakeGRPO)
    part = policy.PolicyPart(RunConfig(method="lora", rl={}).resolved("cuda"),
                             _placement(F16), {})
    part.prompts = make_prompts(10, seed=0)
    part.proxy = part.gold = part.sampler = part.model = part.tokenizer = None
    part.peft_config = None
    part.build([], tmp_path)
    assert (captured["args"].fp16, captured["args"].bf16) == (True, False)


def test_qlora_computes_in_fp16_on_a_fp16_placement():
    pytest.importorskip("bitsandbytes")
    import ftlab

    q = ftlab.QLora().quantization(_placement(F16))
    assert q.bnb_4bit_compute_dtype == F16


def test_env_prints_why_this_dtype(gpu):
    from ftlab.environment import check_environment

    gpu(7, 5)
    report = check_environment()
    assert (report.device, report.dtype) == ("cuda", "float16")
    text = str(report)
    assert "device cuda, dtype float16" in text
    assert "why this dtype: fp16 with loss scaling" in text and "7.5" in text
    assert report.to_dict()["dtype_reason"] == report.dtype_reason
    assert "7.5" in report._repr_html_()
