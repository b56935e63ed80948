"""What the method notebooks show, as functions: measurements that need no training run
(parameter counts, small sweeps) and the figures that explain them.

- ``common``: the trainable-parameter table of every method, before/after answers on held-out
  rows, a small cached sweep over one knob;
- ``lora``: singular values of a trained LoRA update against the base weight; the rank sweep;
- ``qlora``: the NF4 and FP4 grids against a real layer's weights; error and bits per weight;
- ``prompting``: where prefix vectors and a soft prompt enter the model; prefix length and
  soft-prompt initialisation sweeps.

A notebook calls one function per picture or table; the teaching stays in its Markdown.
"""
