"""Write a Llama-architecture model as one GGUF file (llama.cpp, Ollama, LM Studio).

Written with the ``gguf`` package's own writer (the package transformers reads GGUF with),
so no converter is downloaded. What a GGUF file holds, and what this module writes:

- the architecture's hyperparameters under ``llama.*`` (from the model's config);
- the tokenizer: every token string in id order, its type, the BPE merges, the special
  ids and the chat template, so the file is complete without the tokenizer folder;
- the tensors under GGUF's names (``blk.3.attn_q.weight``). llama.cpp's rotary embedding
  pairs dimensions differently from transformers', so the query and key projections are
  stored with their rows regrouped (``rope_permute``); transformers undoes it on load.

Types: ``f32`` (lossless), ``f16`` (weights rounded to half precision), ``q8_0`` (blocks of
32 weights, one fp16 scale and 32 int8 values: about 8.5 bits a weight). Norm weights and
any matrix whose rows do not split into 32-blocks stay f32, as llama.cpp keeps them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError

GGUF_TYPES = ("f32", "f16", "q8_0")
_SPECIAL, _USER, _NORMAL = 3, 4, 1  # gguf TokenType: CONTROL, USER_DEFINED, NORMAL


def _qtype(name: str):
    import gguf

    return {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
            "q8_0": gguf.GGMLQuantizationType.Q8_0}[name]


def _file_type(name: str) -> int:
    import gguf

    return {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[name]


def check_architecture(model) -> None:
    """Only Llama-family models are written (the embedded SmolLM2 is one); said before
    anything is written."""
    kind = getattr(model.config, "model_type", None)
    if kind != "llama":
        raise ConfigError("format", "gguf", f"a Llama-architecture model (this one is "
                          f"{kind!r})", "Export format='merged' and convert that folder with "
                          "llama.cpp's convert_hf_to_gguf.py.")


def rope_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Regroup a query/key projection's rows from transformers' rotary layout (the two
    halves of each head) to llama.cpp's (interleaved pairs)."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _merges(tok) -> list[str]:
    import json

    model = json.loads(tok.backend_tokenizer.to_str())["model"]
    return [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]


def _add_tokenizer(writer, tok, vocab_size: int, pre: str) -> None:
    special = set(tok.all_special_ids)
    added = set(tok.added_tokens_decoder)
    tokens, types = [], []
    for i in range(vocab_size):
        t = tok.convert_ids_to_tokens(i)
        tokens.append(t if t is not None else f"[PAD{i}]")
        types.append(_SPECIAL if i in special else _USER if i in added else _NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(tok))
    for setter, tid in ((writer.add_bos_token_id, tok.bos_token_id),
                        (writer.add_eos_token_id, tok.eos_token_id),
                        (writer.add_unk_token_id, tok.unk_token_id),
                        (writer.add_pad_token_id, tok.pad_token_id)):
        if tid is not None:
            setter(int(tid))
    writer.add_add_bos_token(False)  # the chat template writes every special token itself
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template)


def _tensor(name: str, w: torch.Tensor, qtype: str):
    """``(array, raw_dtype)`` for the writer: norms and odd shapes stay f32."""
    import gguf

    data = w.detach().to(torch.float32).cpu().numpy()
    if data.ndim < 2 or qtype == "f32":
        return data, None
    if qtype == "f16":
        return data.astype(np.float16), None
    if data.shape[-1] % 32:
        return data, None
    return gguf.quants.quantize(data, _qtype(qtype)), _qtype(qtype)


def write_gguf(model, tok, path: str | Path, qtype: str = "f16", *, name: str = "",
               pre: str = "default") -> Path:
    """Write ``model`` (a plain transformers Llama, adapters already merged) and ``tok`` as
    one GGUF file at ``path``. ``pre`` names llama.cpp's pre-tokenizer."""
    import gguf

    if qtype not in GGUF_TYPES:
        raise ConfigError("quant", qtype, "one of " + ", ".join(map(repr, GGUF_TYPES)))
    check_architecture(model)
    c = model.config
    n_head, n_kv = c.num_attention_heads, c.num_key_value_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_head
    path = Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name or path.stem)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(_rope_theta(c))
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_vocab_size(c.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(_file_type(qtype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, tok, c.vocab_size, pre)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
    tied = getattr(c, "tie_word_embeddings", False)
    for hf_name, w in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd for the output when there is no output
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        new = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ConfigError("format", "gguf", "tensors GGUF's llama layout names",
                              f"{hf_name} has no GGUF name: export format='merged'.")
        if hf_name.endswith("q_proj.weight"):
            w = rope_permute(w, n_head)
        elif hf_name.endswith("k_proj.weight"):
            w = rope_permute(w, n_kv)
        data, raw = _tensor(new, w, qtype)
        writer.add_tensor(new, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
