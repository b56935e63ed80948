"""No warning box the course could silence at its source (issue 32, item 5)."""

from __future__ import annotations

import os
import subprocess
import sys

# As in a notebook: every warning shown, ftlab imported, a LoRA model built (peft reads
# transformers' deprecated ``is_gradient_checkpointing`` there); then the same without
# ftlab's filter, to show the warning is real and the filter is what stops it.
SCRIPT = """
import warnings
warnings.simplefilter("always")
import ftlab
from ftlab.methods import apply_method
from ftlab.models import load_model
model, _ = load_model("tiny")
apply_method(model, ftlab.Lora(r=2))
print("--- without ftlab's filter", file=sys.stderr, flush=True)
warnings.filters[:] = [f for f in warnings.filters
                       if not (f[1] and "is_gradient_checkpointing" in f[1].pattern)]
model, _ = load_model("tiny")
apply_method(model, ftlab.Lora(r=2))
"""


def test_building_a_lora_model_shows_no_gradient_checkpointing_warning():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    with_ftlab, without = out.stderr.split("--- without ftlab's filter")
    assert "is_gradient_checkpointing" not in with_ftlab, with_ftlab[-2000:]
    assert "is_gradient_checkpointing" in without  # the warning is real: the filter stops it
