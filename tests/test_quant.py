"""4-bit storage measured with bitsandbytes on CPU: the grids, error and bytes per weight."""

import pytest
import torch

from ftlab.instruments import quant


@pytest.fixture(scope="module")
def normal_weights():
    torch.manual_seed(0)
    return torch.randn(256, 512) * 0.02


def test_each_grid_has_sixteen_codes_spanning_minus_one_to_one():
    for qt in quant.QUANT_TYPES:
        g = quant.levels(qt)
        assert g.numel() == 16 and torch.all(g[1:] >= g[:-1])
        assert g.abs().max() == pytest.approx(1.0)
    nf4, fp4 = quant.levels("nf4"), quant.levels("fp4")
    assert nf4.unique().numel() == 16 and 0.0 in nf4.tolist()  # NF4: 16 levels, zero exact
    assert fp4.unique().numel() == 15  # FP4 spends two codes on +0 and -0


def test_nf4_rounds_normal_weights_better_than_fp4(normal_weights):
    nf4 = quant.quantize(normal_weights, "nf4")
    fp4 = quant.quantize(normal_weights, "fp4")
    assert nf4.relative_error < fp4.relative_error
    assert 0.0 < nf4.relative_error < 0.15


def test_double_quantisation_saves_about_a_third_of_a_bit_at_no_visible_cost(normal_weights):
    plain = quant.quantize(normal_weights, "nf4", double_quant=False)
    double = quant.quantize(normal_weights, "nf4", double_quant=True)
    # 4 bits + a 32-bit absmax per 64 weights = 4.5 bits; 8-bit absmax + fp32 per 256 blocks
    assert plain.bits_per_weight == pytest.approx(4.5)
    assert 4.1 < double.bits_per_weight < 4.2
    assert double.relative_error == pytest.approx(plain.relative_error, rel=0.02)


def test_roundtrip_keeps_the_shape_and_each_block_takes_at_most_sixteen_values(normal_weights):
    back, n_bytes = quant.roundtrip(normal_weights, "nf4")
    assert back.shape == normal_weights.shape
    block = back.reshape(-1, quant.BLOCKSIZE)[0]
    assert block.unique().numel() <= 16
    assert n_bytes == normal_weights.numel() // 2 + 4 * normal_weights.numel() // 64


def test_level_usage_is_a_distribution_and_normalised_blocks_lie_in_unit_range(normal_weights):
    x = quant.normalised_blocks(normal_weights)
    assert x.abs().max() <= 1.0 + 1e-6
    usage = quant.level_usage(normal_weights, "nf4")
    assert usage.sum() == pytest.approx(1.0) and (usage > 0).all()


def test_stored_weight_bytes_of_a_4bit_model_counts_codes_and_constants():
    from ftlab.config import RunConfig
    from ftlab.engine import build_model

    fp32, _ = build_model(RunConfig(model="tiny", method="lora", preset="cpu").resolved())
    q4, _ = build_model(RunConfig(model="tiny", method="qlora", preset="cpu").resolved())
    full, four = quant.stored_weight_bytes(fp32), quant.stored_weight_bytes(q4)
    assert full["packed_4bit"] == 0 and four["packed_4bit"] > 0 and four["quant_constants"] > 0
    linear = sum(w.numel() for w in quant.linear_weights(fp32.get_base_model()).values())
    assert four["packed_4bit"] == linear // 2
    assert four["total"] < full["total"]
