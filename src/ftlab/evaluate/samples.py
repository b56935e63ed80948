"""Fixed sample prompts answered greedily: the same questions before and after training."""

from __future__ import annotations

from collections.abc import Sequence

from ..data.probes import SAMPLE_PROMPTS
from ..generation import generate_answers


def sample_answers(model, tok, prompts: Sequence[str] = tuple(SAMPLE_PROMPTS), *,
                   max_new_tokens: int = 64, batch_size: int | None = None,
                   progress: bool = True) -> list[dict]:
    """``[{"prompt", "output", "raw", "stopped"}]`` for each fixed prompt, in order."""
    answers = generate_answers(model, tok, [[{"role": "user", "content": p}] for p in prompts],
                               max_new_tokens=max_new_tokens, batch_size=batch_size,
                               progress=progress)
    return [{"prompt": p, "output": a.text, "raw": a.raw, "stopped": a.stopped}
            for p, a in zip(prompts, answers)]
