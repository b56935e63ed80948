"""Is QLoRA's gap to LoRA the 4-bit rounding, or something in the 4-bit path?

Three runs of the methods lab's budget (same data, steps, adapters and learning rate):

- ``lora``: LoRA on the fp32 base;
- ``qlora``: QLoRA, the base loaded in NF4 by bitsandbytes;
- ``lora_on_rounded``: LoRA on an ordinary fp32 model whose linear weights were replaced by
  their NF4 round trip (bitsandbytes' own quantise and dequantise, the same blocks and double
  quantisation as QLoRA's config), so the rounding without the 4-bit layers.

If ``qlora`` and ``lora_on_rounded`` agree, the 4-bit layers compute what their dequantised
weights compute and the whole gap is the rounding. After the QLoRA run, each of its 4-bit
layers is checked against ``F.linear`` on its dequantised weight, forward and input gradient,
on random inputs. Notebook 12 and docs/gpu.md quote the figures.

Run: python benchmarks/qlora_rounding.py [--seed 0]   (3 runs of 1-3 minutes on 2 CPU cores)
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from ftlab.engine import supervised, train
from ftlab.instruments.quant import roundtrip
from ftlab.labs.methods import MethodsLab
from ftlab.methods import apply_method
from ftlab.models import load_model, resolve_source


def round_trip_(model, method) -> None:
    """Replace every linear weight that QLoRA would quantise by its NF4 round trip."""
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and "lm_head" not in name:
            back, _ = roundtrip(mod.weight.data, method.quant_type, method.double_quant)
            mod.weight.data = back.to(mod.weight.dtype)


def layer_errors(model, rows: int = 7) -> dict[str, float]:
    """Largest relative error of any 4-bit layer against its dequantised weight."""
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnbf

    fwd = grad = 0.0
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        w = bnbf.dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
        x = torch.randn(rows, w.shape[1], requires_grad=True)
        y = layer(x)
        g = torch.randn_like(y)
        (y * g).sum().backward()
        xr = x.detach().clone().requires_grad_(True)
        yr = torch.nn.functional.linear(xr, w, layer.bias)
        (yr * g).sum().backward()
        fwd = max(fwd, float((y - yr).detach().norm() / yr.detach().norm()))
        grad = max(grad, float((x.grad - xr.grad).norm() / xr.grad.norm()))
    return {"layers": len(layers), "max_forward_rel_err": fwd, "max_input_grad_rel_err": grad}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    lab = MethodsLab()
    built = supervised.build_model

    def rounded_build(cfg):
        model, tok = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)
        round_trip_(model, lab.config("qlora", a.seed).method)
        return apply_method(model, cfg.method, tok, resolve_source(cfg.model)), tok

    out: dict = {"seed": a.seed}
    runs_dir = tempfile.mkdtemp(prefix="ftlab-qlora-rounding-")
    for name, arm, build in (("lora", "lora", built), ("qlora", "qlora", built),
                             ("lora_on_rounded", "lora", rounded_build)):
        supervised.build_model = build
        try:
            t0 = time.perf_counter()
            run = train(lab.config(arm, a.seed), runs_dir=runs_dir, progress=False)
        finally:
            supervised.build_model = built
        out[name] = {"val_loss": [round(e["val_loss"], 4) for e in run.evals],
                     "train_loss": [round(s["loss"], 4) for s in run.steps],
                     "wall_s": round(time.perf_counter() - t0, 1)}
        if name == "qlora":
            out["qlora_layers"] = layer_errors(run.model.get_base_model())
    out["qlora_minus_lora_end"] = out["qlora"]["val_loss"][-1] - out["lora"]["val_loss"][-1]
    out["qlora_minus_rounded_end"] = (out["qlora"]["val_loss"][-1]
                                      - out["lora_on_rounded"]["val_loss"][-1])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
