"""Instruction-following probes: does the model still obey instructions it was never
trained on? Collapse after aggressive fine-tuning shows here first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..data.probes import Probe, load_probes
from ..generation import generate_answers
from .checks import check_instruction
from .result import EvalResult, mean

PROBE_MAX_NEW_TOKENS = 160  # room for "at least 50 words" or three paragraphs


def run_probes(model, tok, probes: Sequence[Probe] | None = None, *,
               max_new_tokens: int = PROBE_MAX_NEW_TOKENS, batch_size: int = 8,
               progress: bool = True, keep: int = 12) -> EvalResult:
    """Pass rate overall and per instruction type (greedy answers, checked by code)."""
    probes = list(load_probes() if probes is None else probes)
    answers = generate_answers(model, tok, [p.messages for p in probes],
                               max_new_tokens=max_new_tokens, batch_size=batch_size,
                               progress=progress)
    by_type: dict[str, list[bool]] = defaultdict(list)
    failures = []
    for probe, ans in zip(probes, answers):
        ok = check_instruction(probe.type, ans.text, probe.kwargs)
        by_type[probe.type].append(ok)
        if not ok:
            failures.append({"id": probe.id, "type": probe.type, "prompt": probe.prompt,
                             "output": ans.text, "stopped": ans.stopped})
    # one failure per type first, so the display shows every kind of miss
    shown = list({f["type"]: f for f in reversed(failures)}.values())[::-1][:keep]
    passed = sum(sum(v) for v in by_type.values())
    return EvalResult("probes", passed / len(probes) if probes else 0.0, len(probes),
                      {t: mean(v) for t, v in by_type.items()}, examples=shown,
                      extra={"max_new_tokens": max_new_tokens,
                             "n_per_type": {t: len(v) for t, v in by_type.items()}})
