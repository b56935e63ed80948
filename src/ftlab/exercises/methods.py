"""The checks of the start notebook's and the method notebooks' exercises (00, 10-15)."""

from __future__ import annotations

import random

from .core import Case, function_check, property_check


def _lora_layer(d_in: int, d_out: int, r: int, alpha: int, seed: int):
    """A PEFT LoRA layer on a small linear layer, with B made non-zero (as after training)."""
    import torch
    from peft import LoraConfig, get_peft_model

    class One(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(d_in, d_out)

        def forward(self, x):
            return self.proj(x)

    torch.manual_seed(seed)
    model = get_peft_model(One(), LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0,
                                             target_modules=["proj"]))
    layer = model.base_model.model.proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    return layer


# ------------------------------------------------------------------ 00 · start here


def check_lora_count(fn) -> None:
    """r·(d_in + d_out): counted on PEFT's own layer."""
    rng = random.Random(0)
    shapes = [(576, 576, 8), (576, 1536, 8), (1536, 576, 1), (4096, 4096, 16)]
    shapes += [(rng.randint(2, 64), rng.randint(2, 64), rng.randint(1, 8)) for _ in range(12)]

    def counted(case):
        layer = _lora_layer(*case.args, alpha=16, seed=0)
        return sum(p.numel() for n, p in layer.named_parameters() if "lora_" in n)

    function_check("00.1", "LoRA's trained numbers", fn,
                   [Case(f"{d_in} -> {d_out}, r = {r}", (d_in, d_out, r))
                    for d_in, d_out, r in shapes],
                   counted, compare=lambda g, w: g == w,
                   hint="A is r × d_in and B is d_out × r; count the numbers in both.")


# ------------------------------------------------------------------ 10 · full fine-tuning


def _loss_cases():
    import torch

    g = torch.Generator().manual_seed(10)
    cases = []
    for b, t, v, masked in [(1, 5, 7, 2), (2, 6, 11, 3), (3, 9, 5, 4), (1, 4, 3, 0)]:
        logits = torch.randn(b, t, v, generator=g)
        labels = torch.randint(0, v, (b, t), generator=g)
        labels[:, :masked] = -100
        cases.append(Case(f"batch {b} × {t} tokens, vocabulary {v}, first {masked} masked",
                          (logits, labels)))
    return cases


def _loss_hint(case, got, want) -> str:
    import torch

    logits, labels = case.args
    flat = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                             labels.reshape(-1), ignore_index=-100)
    if torch.isclose(torch.as_tensor(got).float(), flat):
        return ("position t predicts token t + 1: drop the last logit position and the first "
                "label before the cross-entropy.")
    return "leave out the positions whose (shifted) label is -100 (ignore_index=-100)."


def check_answer_loss(fn) -> None:
    from ..instruments.handwritten import answer_loss

    function_check("10.1", "the answer-only loss", fn, _loss_cases(),
                   lambda c: answer_loss(*c.args), compare=lambda g, w: _close_t(g, w, 1e-5),
                   hint=_loss_hint, describe=lambda v: f"{float(v):.6f}")


def _close_t(got, want, tol):
    import torch

    return torch.allclose(torch.as_tensor(got).double(), torch.as_tensor(want).double(),
                          rtol=tol, atol=tol)


def check_adam_update(fn) -> None:
    """One AdamW step of one tensor, against ftlab's hand-written step (itself checked
    against the engine's in the notebook)."""
    import torch

    from ..instruments.handwritten import AdamState, adamw_step

    g = torch.Generator().manual_seed(11)
    cases = []
    for step in [1, 1, 2, 5, 30]:
        p, grad = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
        m = torch.randn(4, 3, generator=g) * 0.1 if step > 1 else torch.zeros(4, 3)
        v = torch.rand(4, 3, generator=g) * 0.01 if step > 1 else torch.zeros(4, 3)
        cases.append(Case(f"step {step}, lr 1e-3", (p, grad, m, v, step, 1e-3),
                          show=f"p, g, m, v of shape (4, 3), step={step}, lr=1e-3"))

    def want(case):
        p, grad, m, v, step, lr = case.args
        param = p.clone()
        param.grad = grad.clone()
        state = AdamState(step=step - 1, m={0: m.clone()}, v={0: v.clone()})
        adamw_step([param], state, lr)
        return param

    def hint(case, got, w):
        p, _, _, _, step, lr = case.args
        if step == 1:
            return ("on step 1 every weight moves by almost exactly lr (m̂/√v̂ = g/|g|): did "
                    "you correct the bias, m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t)?")
        return "m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g², then p - lr·m̂/(√v̂ + eps)."

    function_check("10.2", "one AdamW step", fn, cases, want,
                   compare=lambda got, w: _close_t(got, w, 1e-6), hint=hint,
                   describe=lambda v: "a tensor" if v is not None else "None")


# ------------------------------------------------------------------ 11 · LoRA


def check_lora_delta(fn) -> None:
    from ..instruments.adapters import lora_update

    rng = random.Random(11)
    specs = [(6, 4, 2, 4), (8, 8, 1, 16), (16, 5, 4, 8)]
    specs += [(rng.randint(2, 20), rng.randint(2, 20), rng.randint(1, 4), rng.choice([1, 8, 16]))
              for _ in range(8)]
    cases = []
    for i, (d_in, d_out, r, alpha) in enumerate(specs):
        layer = _lora_layer(d_in, d_out, r, alpha, seed=i)
        a = layer.lora_A["default"].weight.detach().clone()
        b = layer.lora_B["default"].weight.detach().clone()
        cases.append(Case(f"{d_in} -> {d_out}, r = {r}, alpha = {alpha}", (a, b, alpha, r),
                          show=f"A {tuple(a.shape)}, B {tuple(b.shape)}, alpha={alpha}, r={r}"))
        cases[-1].layer = layer

    def hint(case, got, want):
        import torch

        a, b, alpha, r = case.args
        if tuple(torch.as_tensor(got).shape) != tuple(want.shape):
            return f"ΔW has the shape of the layer's weight, out × in = {tuple(want.shape)}."
        if torch.allclose(torch.as_tensor(got).float(), b @ a, atol=1e-5):
            return "do not forget the scale alpha / r."
        return "ΔW = (alpha / r) · B · A (B first: out × r times r × in)."

    function_check("11.1", "the LoRA update ΔW", fn, cases,
                   lambda c: lora_update(c.layer), compare=lambda g, w: _close_t(g, w, 1e-5),
                   hint=hint, describe=lambda v: f"a tensor of shape {tuple(v.shape)}"
                   if hasattr(v, "shape") else repr(v)[:80])


def check_lora_forward(fn) -> None:
    """x·Wᵀ + (alpha/r)·x·Aᵀ·Bᵀ, against the PEFT layer's own forward."""
    import torch

    cases = []
    for i, (d_in, d_out, r, alpha) in enumerate([(6, 4, 2, 4), (10, 7, 3, 16), (5, 5, 1, 1)]):
        layer = _lora_layer(d_in, d_out, r, alpha, seed=100 + i)
        layer.eval()  # no dropout
        x = torch.randn(3, d_in, generator=torch.Generator().manual_seed(i))
        args = (x, layer.base_layer.weight.detach(), layer.base_layer.bias.detach(),
                layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach(),
                alpha, r)
        case = Case(f"{d_in} -> {d_out}, r = {r}", args, show="x, W, bias, A, B, alpha, r")
        case.layer = layer
        cases.append(case)

    def want(case):
        with torch.no_grad():
            return case.layer(case.args[0])

    function_check("11.2", "the LoRA layer's output", fn, cases, want,
                   compare=lambda g, w: _close_t(g, w, 1e-5),
                   hint="y = x Wᵀ + bias + (alpha / r) · (x Aᵀ) Bᵀ: the adapter never builds ΔW.",
                   describe=lambda v: f"a tensor of shape {tuple(v.shape)}"
                   if hasattr(v, "shape") else repr(v)[:80])


# ------------------------------------------------------------------ 12 · QLoRA


def check_nf4(fn) -> None:
    """Block-wise absmax + nearest NF4 level, against bitsandbytes' own round trip."""
    import torch

    from ..instruments.quant import roundtrip

    g = torch.Generator().manual_seed(12)
    cases = [Case("a 2 × 64 matrix of normal weights", (torch.randn(2, 64, generator=g), 64)),
             Case("a 16 × 64 matrix, blocks of 64", (torch.randn(16, 64, generator=g) * 0.02, 64)),
             Case("one block with an outlier", (torch.cat([torch.randn(63, generator=g) * 0.01,
                                                           torch.tensor([0.5])]), 64)),
             Case("blocks of 32", (torch.randn(8, 32, generator=g), 32)),
             Case("blocks of 256", (torch.randn(4, 256, generator=g) * 0.05, 256))]
    for case in cases:
        case.show = f"a tensor of shape {tuple(case.args[0].shape)}, blocksize {case.args[1]}"

    def compare(got, want):
        got = torch.as_tensor(got).float().reshape(want.shape)
        # bitsandbytes stores the absmax in fp32 and rounds at the midpoints: allow ties
        close = (got - want).abs() <= 1e-5 * want.abs().max().clamp_min(1e-12)
        return float(close.float().mean()) >= 0.995

    def hint(case, got, want):
        w, bs = case.args
        got = torch.as_tensor(got).float()
        if got.shape != want.shape:
            return f"return a tensor of the input's shape {tuple(w.shape)}."
        if (got.abs() <= 1 + 1e-6).all() and want.abs().max() > 1:
            return "multiply back by each block's absmax."
        return ("cut the flattened weights into blocks of `blocksize`, divide each by its "
                "largest |w|, replace each value by the nearest of quant.levels('nf4'), "
                "multiply back.")

    function_check("12.1", "NF4, round trip", fn, cases,
                   lambda c: roundtrip(c.args[0], "nf4", False, c.args[1])[0],
                   compare=compare, hint=hint,
                   describe=lambda v: f"a tensor of shape {tuple(v.shape)}"
                   if hasattr(v, "shape") else repr(v)[:80])


def check_bits_per_weight(fn) -> None:
    import torch

    from ..instruments.quant import quantize

    cases = [Case(f"blocksize {bs}, double quantisation {dq}", (bs, dq))
             for bs in (64, 128, 256) for dq in (False,)]
    w = torch.randn(256, 256, generator=torch.Generator().manual_seed(120))

    def want(case):
        bs, dq = case.args
        return quantize(w, "nf4", dq, bs).bits_per_weight

    function_check("12.2", "bits per weight", fn, cases, want,
                   compare=lambda g, w_: abs(g - w_) < 1e-3,
                   hint="4 bits per code, plus one 32-bit absmax shared by `blocksize` weights.")


# ------------------------------------------------------------------ 13 · prefix, 14 · prompt


def _shapes():
    from transformers import LlamaConfig

    rng = random.Random(13)
    out = [LlamaConfig(hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
                       num_hidden_layers=30, intermediate_size=1536, vocab_size=49152)]
    for _ in range(8):
        heads = rng.choice([4, 8, 16])
        kv = rng.choice([h for h in (1, 2, 4, heads) if heads % h == 0])
        head_dim = rng.choice([16, 32, 64])
        out.append(LlamaConfig(hidden_size=heads * head_dim, num_attention_heads=heads,
                               num_key_value_heads=kv, num_hidden_layers=rng.randint(2, 40),
                               intermediate_size=64, vocab_size=1000))
    return out


def _config_case(cfg, n):
    return Case(f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
                f"{cfg.num_attention_heads} heads, {cfg.num_key_value_heads} key/value heads, "
                f"{n} virtual tokens",
                (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
                 cfg.num_key_value_heads, n))


def check_prefix_numbers(fn) -> None:
    from ..instruments.prompting import trained_numbers

    rng = random.Random(131)
    cases = []
    for cfg in _shapes():
        case = _config_case(cfg, rng.choice([1, 5, 20, 60]))
        case.cfg = cfg
        cases.append(case)
    function_check("13.1", "prefix tuning's trained numbers", fn, cases,
                   lambda c: trained_numbers(c.cfg, c.args[-1])["prefix"],
                   compare=lambda g, w: g == w,
                   hint=("a key and a value per virtual token per layer; a key has "
                         "kv_heads × head_dim numbers, head_dim = hidden / heads."))


def check_prompt_numbers(fn) -> None:
    from ..instruments.prompting import trained_numbers

    rng = random.Random(141)
    cases = []
    for cfg in _shapes():
        case = _config_case(cfg, rng.choice([1, 5, 20, 100]))
        case.cfg = cfg
        cases.append(case)
    function_check("14.1", "prompt tuning's trained numbers", fn, cases,
                   lambda c: trained_numbers(c.cfg, c.args[-1])["prompt"],
                   compare=lambda g, w: g == w,
                   hint="one input embedding (hidden numbers) per soft token; nothing per layer.")


def nearest_ids(vectors, embeddings):
    """For each vector, the row of ``embeddings`` with the largest cosine similarity."""
    import torch

    a = torch.nn.functional.normalize(vectors.float(), dim=-1)
    b = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    return (a @ b.T).argmax(dim=-1).tolist()


def check_nearest_words(fn) -> None:
    import torch

    g = torch.Generator().manual_seed(14)
    cases = []
    for n, vocab, dim in [(3, 10, 4), (5, 50, 8), (20, 200, 16)]:
        emb = torch.randn(vocab, dim, generator=g)
        emb[0] *= 50  # a long vector: nearest by distance is not nearest by angle
        vec = torch.randn(n, dim, generator=g)
        cases.append(Case(f"{n} soft tokens, vocabulary {vocab}", (vec, emb),
                          show=f"vectors {tuple(vec.shape)}, embeddings {tuple(emb.shape)}"))
    function_check("14.2", "the nearest vocabulary word", fn, cases,
                   lambda c: nearest_ids(*c.args), compare=lambda g_, w: list(g_) == w,
                   hint=("cosine similarity: normalise both to length 1, then the largest dot "
                         "product; distance favours short vectors, the dot product long ones."))


# ------------------------------------------------------------------ 15 · compare


def check_training_bytes(fn) -> None:
    """Weights + gradients + AdamW state in fp32, against ftlab.instruments.memory_scale."""
    from ..instruments.memory_scale import estimate

    cases = [Case(f"{size}, {method}", (size, method))
             for size in ("135m", "1b", "7b") for method in ("full", "lora", "prompt")]
    for case in cases:
        e = estimate(case.args[0], case.args[1], precision="fp32")
        case.args = (e.n_params, e.trainable)
        case.show = f"n_params={e.n_params:,}, trainable={e.trainable:,}"
        case.parts = (e.weights, e.gradients, e.optimizer_state)

    def want(case):
        return case.parts

    def hint(case, got, w):
        if isinstance(got, (tuple, list)) and len(got) == 3:
            if got[0] != w[0]:
                return ("weights: every frozen weight once (4 bytes) and every trained one in "
                        "its own 4-byte copy; for full fine-tuning the trained ones *are* the "
                        "model.")
            if got[2] != w[2]:
                return "AdamW keeps two moments per trained weight: 8 bytes in fp32."
        return "return (weights, gradients, optimizer_state) in bytes, fp32."

    function_check("15.1", "bytes to train, in fp32", fn, cases, want,
                   compare=lambda g, w: tuple(int(x) for x in g) == tuple(w), hint=hint)


def check_fits(fn) -> None:
    """Design: which of two methods to pick for a GPU, from the estimator."""
    from ..instruments.memory_scale import estimate

    def prop_cases(f):
        for model, gpu in (("7b", 24), ("7b", 80), ("65b", 48), ("1b", 16), ("13b", 24)):
            got = f(model, gpu)
            if got is None:
                return False, "stub"
            fitting = [m for m in ("full", "lora", "qlora") if estimate(model, m).fits(gpu)]
            want = fitting[0] if fitting else None
            if got != want:
                return False, f"{model} on {gpu} GB: expected {want!r}, yours {got!r}"
        return True, ""

    property_check("15.2", "the best method that fits", fn, [
        ("picks full, else LoRA, else QLoRA, whichever first fits (or None)", prop_cases)])

