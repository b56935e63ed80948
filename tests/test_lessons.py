"""The method notebooks' measurements and figures, on the tiny model: counts follow from the
shapes, sweeps are cached runs, figures carry what their captions say."""

import pytest
import torch

from ftlab.config import RunConfig
from ftlab.engine import build_model
from ftlab.instruments import common, lora, prompting, quant
from ftlab.models import load_model


def tiny(method: str, **changes) -> RunConfig:
    return RunConfig(model="tiny", method=method, preset="cpu").replace(**changes)


def test_prefix_and_prompt_counts_follow_from_the_model_shapes():
    cfg = prompting.model_config("tiny")
    reports = common.param_table({m: tiny(m, num_virtual_tokens=7) for m in ("prefix", "prompt")})
    n = prompting.trained_numbers(cfg, 7)
    assert reports["prefix"].trainable == n["prefix"] == 7 * 2 * 2 * 32  # GQA: 2 kv heads x 16
    assert reports["prompt"].trainable == n["prompt"] == 7 * 64


def test_param_table_orders_lora_above_prefix_above_prompt():
    reports = common.param_table({m: tiny(m) for m in ("lora", "prefix", "prompt")})
    share = {m: r.percent for m, r in reports.items()}
    assert share["lora"] > share["prefix"] > share["prompt"] > 0
    rows = common.param_rows(reports)
    assert [r["method"] for r in rows] == ["LoRA", "prefix tuning", "prompt tuning"]


def test_where_figure_draws_both_methods_with_their_counts():
    fig = prompting.where_figure(prompting.model_config("tiny"), 20)
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "prompt tuning" in texts and "prefix tuning" in texts
    assert "20 × 64 = 1,280" in texts and "2,560" in texts
    assert len(fig.layout.shapes) > 20


def test_update_spectra_of_a_rank_r_update_show_r_directions():
    model, _ = build_model(tiny("lora", r=3).resolved())
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    spectra = lora.update_spectra(model)
    assert spectra and all(s["rank_dW"] == 3 and s["rank_W"] > 3 for s in spectra.values())
    assert len(lora.update_figure(spectra).data) == 2 * len(spectra)


def test_grid_figure_draws_sixteen_levels_per_data_type():
    torch.manual_seed(0)
    fig = quant.grid_figure(torch.randn(64, 256))
    assert len(fig.layout.shapes) == 2 * 16  # one vertical line per level, two panels
    assert "bits" in fig.layout.annotations[0].text


def test_usage_entropy_is_four_bits_for_even_use_and_less_otherwise():
    assert quant.usage_entropy(torch.full((16,), 1 / 16)) == pytest.approx(4.0)
    assert quant.usage_entropy(torch.tensor([0.5, 0.5] + [0.0] * 14)) == pytest.approx(1.0)


def test_quant_figure_has_a_bar_per_format():
    torch.manual_seed(0)
    fig = quant.quant_figure(quant.compare_types(torch.randn(64, 256)))
    assert [len(t.x) for t in fig.data] == [4, 4]


def test_sweep_trains_once_then_loads_from_the_cache(runs_dir):
    base = tiny("lora").replace(size=12, steps=2, batch_size=2, eval_every=2,
                                **{"eval.samples": 0})
    first = common.sweep(base, "r", [1, 2], progress=False)
    assert [r.final["params"]["trainable"] for r in first.values()][0] < \
        first[2].final["params"]["trainable"]
    assert not any(r.from_cache for r in first.values())
    again = common.sweep(base, "r", [1, 2], progress=False)
    assert all(r.from_cache for r in again.values())
    assert all(r.model is None for r in first.values())  # one model in memory at a time


def test_before_after_shows_the_base_and_the_adapted_answers():
    from ftlab.data.tasks import held_out

    model, tok = build_model(tiny("lora").resolved())
    base, _ = load_model("tiny")
    rows = held_out("arithmetic", 0).test[:2]
    view = common.before_after(model, tok, rows, max_new_tokens=4)
    assert [r["question"] for r in view.rows] == [r["messages"][-2]["content"] for r in rows]
    assert all(r["before"] == r["after"] for r in view.rows)  # B = 0: LoRA starts as the base
