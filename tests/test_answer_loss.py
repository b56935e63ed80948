"""Logits only where the loss reads them (``evaluate.loss.loss_tail``): the model's own
loss, through the training collator, and ``learned_token_loss`` (validation) give the value
and the gradients of the full computation, for every method and every training format (the
whole-text format learns every token, so there every position is kept), and the trainer's
validation loss is the model's own."""

import pytest
import torch
from transformers import DataCollatorForSeq2Seq

import ftlab
from ftlab.data import encode, load_splits
from ftlab.engine import build_model
from ftlab.engine.supervised import Collator
from ftlab.evaluate.loss import learned_token_loss

METHODS = ["full", "lora", "qlora", "prefix", "prompt"]


def rows(tok, fmt: str = "chat", n: int = 4) -> list[dict]:
    cfg = ftlab.RunConfig(model="tiny", preset="cpu").replace(size=20).resolved()
    rows = load_splits(cfg).train[:n]
    # rows of different lengths: right padding puts each answer somewhere else
    rows = [dict(r, messages=[*r["messages"][:-1], dict(r["messages"][-1], content=(
        r["messages"][-1]["content"] + " and more" * i))]) for i, r in enumerate(rows)]
    return [encode(r, tok, fmt, 256) for r in rows]


def batch(tok, fmt: str = "chat"):
    return DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)(rows(tok, fmt))


def grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters()
           if p.requires_grad and p.grad is not None}
    model.zero_grad()
    return out


# A row's first token has nothing before it to predict it, so no loss scores it; PEFT's
# prompt tuning scores it from its virtual tokens when it is learned, which only the
# whole-text format does (the first token is the template's <|im_start|>).
CASES = [(m, f) for f in ("chat", "chat_whole_text") for m in METHODS
         if (m, f) != ("prompt", "chat_whole_text")]


@pytest.mark.parametrize(("method", "fmt"), CASES)
def test_answer_loss_is_the_models_own_loss_with_the_same_gradients(method, fmt):
    cfg = ftlab.RunConfig(model="tiny", method=method, preset="cpu", seed=0).resolved()
    model, tok = build_model(cfg)
    model.eval()  # no dropout: both losses see the same network; gradients flow all the same
    b = batch(tok, fmt)
    reference = model(**b).loss
    reference.backward()
    expected = grads(model)

    tail = Collator(tok, tail=True)(rows(tok, fmt))
    assert tail["logits_to_keep"] < tail["input_ids"].shape[1] or fmt == "chat_whole_text"
    own = model(**tail)
    own.loss.backward()
    assert own.logits.shape[1] == tail["logits_to_keep"]
    assert own.loss.item() == pytest.approx(reference.item(), rel=1e-5)
    same_gradients(grads(model), expected)

    total, count = learned_token_loss(model, b["input_ids"], b["attention_mask"], b["labels"])
    (total / count).backward()
    assert count == int((b["labels"][:, 1:] != -100).sum())
    assert (total / count).item() == pytest.approx(reference.item(), rel=1e-5)
    same_gradients(grads(model), expected)


def same_gradients(got: dict, expected: dict) -> None:
    assert expected.keys() == got.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_a_batch_whose_answers_were_all_cut_off_gives_no_tokens():
    cfg = ftlab.RunConfig(model="tiny", method="lora", preset="cpu").resolved()
    model, tok = build_model(cfg)
    b = batch(tok)
    labels = torch.full_like(b["labels"], -100)
    total, count = learned_token_loss(model, b["input_ids"], b["attention_mask"], labels)
    assert count == 0 and total.item() == 0.0


def test_the_trainer_reports_the_models_own_validation_loss():
    """One evaluation through the trainer (as every run measures validation) against the
    model's own loss, batch by batch, averaged as transformers averages."""
    from ftlab.engine.supervised import SupervisedPart

    cfg = ftlab.RunConfig(model="tiny", method="lora", preset="cpu", seed=0).replace(
        size=20, steps=1, batch_size=4, **{"data.val_size": 8}).resolved()
    part = SupervisedPart(cfg, ftlab.models.choose_placement("cpu"), {})
    part.prepare()
    trainer = part.build([], "/tmp/ftlab-answer-loss-test")
    got = trainer.evaluate()["eval_loss"]
    collate = trainer.data_collator
    rows = part.val_rows
    part.model.eval()
    with torch.no_grad():
        means = [part.model(**collate(rows[i:i + 4])).loss.item() for i in range(0, len(rows), 4)]
    sizes = [len(rows[i:i + 4]) for i in range(0, len(rows), 4)]
    expected = sum(m * s for m, s in zip(means, sizes)) / sum(sizes)
    assert got == pytest.approx(expected, rel=1e-5)
