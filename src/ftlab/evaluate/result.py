"""The one result shape every evaluator returns: notebooks plot it, runs store it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EvalResult:
    """A score in 0..1 over ``n`` items, with a breakdown (per area, type or check).

    ``examples`` keeps a few items for display (e.g. failing outputs); ``extra`` holds
    numbers that are not a share of items (loss, perplexity) or suite settings.
    """

    suite: str
    score: float
    n: int
    breakdown: dict[str, float] = field(default_factory=dict)
    chance: float | None = None
    ci95: tuple[float, float] | None = None
    examples: list[dict] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what ``ftlab eval --json`` prints and run folders keep)."""
        d = asdict(self)
        if d["ci95"] is not None:
            d["ci95"] = list(d["ci95"])
        for key in ("chance", "ci95"):  # only the benchmark has a chance level
            if d[key] is None:
                del d[key]
        return d

    def __str__(self) -> str:
        parts = [f"{self.suite}: {self.score:.3f} over {self.n}"]
        if self.ci95 is not None:
            parts.append(f"(95% CI {self.ci95[0]:.3f}-{self.ci95[1]:.3f})")
        if self.chance is not None:
            parts.append(f"chance {self.chance:.3f}")
        return " ".join(parts)


def wilson_interval(k: int | float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval for a proportion k/n; unlike p ± 1.96·se it stays inside 0..1."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
