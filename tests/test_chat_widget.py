"""The chat widget and the adapter helpers on the tiny model: the base column really is the
base, the merged model answers as the adapter model, and a saved adapter holds only the
trained tensors."""

import pytest
import torch

from ftlab.config import RunConfig
from ftlab.engine import build_model
from ftlab.generation import generate_answers
from ftlab.instruments import adapters
from ftlab.models import load_model
from ftlab.widgets.chat import ChatView

CHATS = [[{"role": "user", "content": q}] for q in ("What is 2 + 3?", "Name a colour.")]


def lora_model(r: int = 4, seed: int = 0):
    """A tiny LoRA model whose B matrices are random (as if trained), so it differs from base."""
    model, tok = build_model(RunConfig(model="tiny", method="lora", preset="cpu").replace(
        r=r, dropout=0.0).resolved())
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, tok


@pytest.fixture(scope="module")
def lora():
    return lora_model()


def test_chat_base_column_is_the_base_model_and_trained_column_is_not(lora):
    model, tok = lora
    base, _ = load_model("tiny")
    chat = ChatView(model, tok, max_new_tokens=8)
    got = chat.ask("What is 2 + 3?")
    assert set(got) == {"trained", "base"}
    plain = generate_answers(base, tok, CHATS[:1], max_new_tokens=8, batch_size=1)[0].text
    adapted = generate_answers(model, tok, CHATS[:1], max_new_tokens=8, batch_size=1)[0].text
    assert got["base"] == plain
    assert got["trained"] == adapted
    assert adapted != plain  # the random adapter changes the answer
    assert len(chat.history) == 1 and "What is 2 + 3?" in chat.transcript.value


def test_chat_send_button_answers_on_a_thread_and_keeps_the_adapter_on(lora):
    model, tok = lora
    chat = ChatView(model, tok, max_new_tokens=4)
    chat.text.value = "Hello"
    chat.send().join(timeout=60)
    assert len(chat.history) == 1 and chat.text.value == ""
    assert not chat.send_button.disabled
    assert any(getattr(m, "disable_adapters", False) is False
               for m in adapters.lora_layers(model).values())  # adapter switched back on


def test_chat_needs_a_base_for_a_plain_model_and_refuses_empty_messages():
    base, tok = load_model("tiny")
    with pytest.raises(TypeError, match="base="):
        ChatView(base, tok)
    chat = ChatView(base, tok, base=base, max_new_tokens=2)
    with pytest.raises(ValueError):
        chat.ask("  ")
    assert chat.send() is None and "Type a message" in chat.status.value


def test_merged_lora_model_answers_token_for_token_as_the_adapter_model(lora):
    model, tok = lora
    check = adapters.merge_check(model, tok, CHATS, max_new_tokens=8)
    assert check.all_identical and check.max_logit_diff < 1e-3
    assert not adapters.lora_layers(check.merged)  # a plain model: no adapter layers left
    assert adapters.lora_layers(model)  # the original keeps its adapters


def test_lora_update_has_at_most_rank_r():
    model, _ = lora_model(r=2)
    name, layer = next(iter(adapters.lora_layers(model).items()))
    delta = adapters.lora_update(layer)
    assert delta.shape == layer.base_layer.weight.shape
    sv = adapters.singular_values(delta)
    assert adapters.numerical_rank(sv) == 2
    assert adapters.energy_share(sv, 2) == pytest.approx(1.0)


def test_saved_adapter_holds_the_trained_tensors_not_the_base(lora, tmp_path):
    model, _ = lora
    saved = adapters.save_adapter(model, tmp_path / "adapter")
    trained = adapters.tensor_bytes(model)
    assert "adapter_config.json" in saved.files
    assert trained <= saved.weights_bytes < trained + 64_000  # tensors + a small header
    assert saved.weights_bytes < adapters.tensor_bytes(model, trainable_only=False) / 2
