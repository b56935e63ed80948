"""The hand-written optimizer step equals the engine's first step (tiny model, seconds)."""

import pytest
import torch

import ftlab
from ftlab.instruments.handwritten import (
    AdamState,
    adamw_step,
    answer_loss,
    check_against_engine,
    engine_first_step,
)

TINY = ftlab.RunConfig(model="tiny", method="full", preset="cpu").replace(
    size=12, batch_size=4, **{"data.val_size": 4, "data.max_length": 64})


def test_hand_written_step_equals_the_engines_first_step(runs_dir):
    run, rec = engine_first_step(TINY, progress=False)
    assert rec.batch is not None and rec.batch["input_ids"].shape[0] == 4
    check = check_against_engine(run, rec)
    print(check)
    assert check.params_compared == run.final["params"]["trainable"]
    assert check.max_update > 0, "the engine's step must move the weights"
    assert abs(check.engine_loss - run.steps[0]["loss"]) < 1e-4
    assert abs(check.hand_grad_norm - check.engine_grad_norm) < 1e-3 * check.engine_grad_norm
    assert check.same(loss_tol=1e-5, weight_tol=1e-6), str(check)


def test_a_different_learning_rate_is_caught(runs_dir):
    """The comparison can fail: the same replay at twice the rate misses the engine's weights."""
    run, rec = engine_first_step(TINY, progress=False)
    run.config.train.learning_rate *= 2
    check = check_against_engine(run, rec)
    assert not check.same()
    assert check.max_weight_diff > 0.5 * check.max_update


def test_answer_loss_is_the_models_own_loss_on_answer_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, -100, 3, 4, 5, -100], [-100, 1, 2, -100, -100, -100]])
    from transformers.loss.loss_utils import ForCausalLMLoss

    ref = ForCausalLMLoss(logits, labels, vocab_size=11)
    assert torch.allclose(answer_loss(logits, labels), ref)


def test_adamw_step_matches_torch_adamw_over_three_steps():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    opt, state = torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1), AdamState()
    for _ in range(3):
        g = torch.randn(5, 3)
        a.grad, b.grad = g.clone(), g.clone()
        adamw_step([a], state, lr=1e-2, weight_decay=0.1)
        opt.step()
    assert torch.allclose(a, b, atol=1e-7)
    assert state.step == 3
    with pytest.raises(AssertionError):  # and the check is not vacuous
        torch.testing.assert_close(a, torch.zeros_like(a))
