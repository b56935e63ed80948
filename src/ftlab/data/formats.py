"""How a chat row becomes training tokens, and the wrong ways to do it.

``chat`` is the model's own template: the prompt (system, user, assistant header) is
masked with -100 and the answer *and its end-of-turn token* are learned, so the model
learns to stop. The other formats exist for the format-mismatch lab: train with one of
them, infer with the chat template, and watch outputs go wrong.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..errors import ConfigError, DatasetError

IGNORE_INDEX = -100


def _chat_split(row: dict, tok, end_token: bool = True) -> tuple[str, str]:
    msgs = row["messages"]
    prompt = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(msgs, tokenize=False)
    if not full.startswith(prompt):
        raise DatasetError("chat template", "the prompt is not a prefix of the full chat",
                           "Use a model whose template renders turns in order.")
    completion = full[len(prompt):].rstrip()  # keep <|im_end|>, drop the newline after it
    if not end_token:
        completion = completion.removesuffix(tok.eos_token).rstrip()
    return prompt, completion


def _question(row: dict) -> str:
    return "\n\n".join(m["content"] for m in row["messages"][:-1] if m["role"] != "system")


def chat(row: dict, tok) -> tuple[str, str]:
    """The model's own chat template, end-of-turn token learned (the correct format)."""
    return _chat_split(row, tok)


def chat_no_eos(row: dict, tok) -> tuple[str, str]:
    """The chat template with the end-of-turn token dropped: the model never learns to stop."""
    return _chat_split(row, tok, end_token=False)


def chat_whole_text(row: dict, tok) -> tuple[str, str]:
    """The chat template with the loss on every token: the system prompt, the question and
    the template markers are learned along with the answer (nothing is masked)."""
    prompt, completion = _chat_split(row, tok)
    return "", prompt + completion


def plain_qa(row: dict, tok) -> tuple[str, str]:
    """Plain ``### Question / ### Answer`` text with no end token (a common tutorial format)."""
    return f"### Question:\n{_question(row)}\n\n### Answer:\n", row["messages"][-1]["content"]


def foreign_chat(row: dict, tok) -> tuple[str, str]:
    """Another model family's markers (Llama-2 ``[INST]``), written as plain text."""
    return f"<s>[INST] {_question(row)} [/INST] ", row["messages"][-1]["content"] + " </s>"


def spurious_tokens(row: dict, tok) -> tuple[str, str]:
    """The chat template, but the answer drags template debris behind it."""
    prompt, completion = _chat_split(row, tok, end_token=False)
    return prompt, completion + "\n### Answer:" + tok.eos_token


FORMATS: dict[str, Callable[[dict, object], tuple[str, str]]] = {
    "chat": chat, "chat_no_eos": chat_no_eos, "chat_whole_text": chat_whole_text,
    "plain_qa": plain_qa,
    "foreign_chat": foreign_chat, "spurious_tokens": spurious_tokens,
}


def check_row(row: dict, where: str) -> None:
    """A row must be a chat that ends with the assistant's answer."""
    msgs = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise DatasetError(where, "the row has no 'messages' list",
                           'Each row needs {"messages": [{"role": "user", "content": ...}, '
                           '{"role": "assistant", "content": ...}]} or "prompt" and "completion".')
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or \
                m.get("role") not in ("system", "user", "assistant"):
            raise DatasetError(f"{where}, message {i}", "a message needs a 'role' "
                               "(system, user or assistant) and a string 'content'",
                               f"Got {m!r}.")
    if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
        raise DatasetError(where, "the last message must be the assistant's answer, after "
                           "at least one user message", "That answer is what training learns.")


def encode(row: dict, tok, fmt: str = "chat", max_length: int = 256) -> dict:
    """Tokenize one row: prompt tokens labelled -100, completion tokens learned."""
    if fmt not in FORMATS:
        raise ConfigError("data.format", fmt, "one of " + ", ".join(map(repr, FORMATS)))
    prompt, completion = FORMATS[fmt](row, tok)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tok(completion, add_special_tokens=False)["input_ids"]
    ids = (p_ids + c_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(p_ids) + c_ids)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def corrupt_formats(n: int, rate: float, corruption: str, seed: int = 0,
                    base: str = "chat") -> list[str]:
    """The format of each of ``n`` training rows: ``rate`` of them get ``corruption``."""
    if corruption not in FORMATS:
        raise ConfigError("data.corruption", corruption, "one of " + ", ".join(map(repr, FORMATS)))
    k = round(rate * n)
    picked = set(random.Random(seed).sample(range(n), k))
    return [corruption if i in picked else base for i in range(n)]
