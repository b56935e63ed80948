"""What the method notebooks use to look inside a model: measurements that need no training
run (parameter counts, memory at scale, small sweeps) and the figures that explain them.

- ``common``: the trainable-parameter table of every method, before/after answers on held-out
  rows, a small cached sweep over one knob;
- ``handwritten``: one optimizer step written out by hand, checked against the engine's;
- ``adapters``: inside a trained adapter (LoRA's update ΔW, its singular values), saving it,
  merging it and checking the merge; ``model_of(run)``;
- ``lora``: singular values of a trained LoRA update against the base weight; the rank sweep;
- ``quant``: the NF4 and FP4 grids against a real layer's weights; error and bits per weight;
- ``prompting``: where prefix vectors and a soft prompt enter the model; prefix length and
  soft-prompt initialisation sweeps;
- ``memory_scale``: training memory per method for 1B to 65B models, by formula.

A notebook calls one function per picture or table; the teaching stays in its Markdown.
"""
