"""Where and when a lab's check was measured: the calibration a preset carries.

A lab's check asserts margins (``RISE``, ``DROP``, ...) that were set from the noise measured
over seeds on one preset. ``Calibration`` records that measurement: the machine (``where``),
the date (``when``), the numbers per seed under the names ``Lab.measure`` gives them (each
lab module keeps them once, in its ``MEASURED``) and the wall time as it was recorded.

A preset without one (``Preset.calibration=None``: every ``gpu`` preset so far) was never
measured. A lab that records a calibration for any of its presets then treats it so:

- ``preset="auto"`` that resolves to it (a GPU machine resolves to ``gpu``) runs the calibrated
  preset instead, the same arms and check (on a GPU it is only faster), and says so once
  (``Lab.notice``);
- named explicitly (``preset="gpu"``) it runs the classroom-scale experiment, and its verdict
  is labelled "not calibrated": the numbers are shown beside the calibrated preset's, and
  ``Verdict.assert_holds()`` does not assert them (``Verdict.passed`` still says whether the
  claim held).

A lab that records no calibration at all (a lab of your own, a test's toy lab) asserts its
check on every preset, as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

CPU_2_CORES = "2 CPU cores, no GPU"  # the machine every calibration so far was measured on


@dataclass(frozen=True)
class Calibration:
    """One preset's check, as measured: where, when, the numbers per seed, the wall time.

    ``per_seed`` maps a seed to its numbers by the names ``Lab.measure`` gives them
    (``"small.min_val"``, ``"hacked.gold.end"``), so a verdict can show a learner's numbers
    beside these; it holds the numbers recorded, not necessarily every one the check reads
    (``note`` says what is missing). ``wall`` is the time as recorded (per run or per sweep),
    ``None`` where none was; ``source`` names the constant the numbers come from."""

    where: str
    when: date
    per_seed: Mapping[int, Mapping[str, float]]
    wall: str | None = None
    source: str = ""
    note: str = ""

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.per_seed))

    @property
    def names(self) -> list[str]:
        """Every number recorded, in the order first seen (seed by seed)."""
        out: dict[str, None] = {}
        for seed in self.seeds:
            out.update(dict.fromkeys(self.per_seed[seed]))
        return list(out)

    def value(self, seed: int, name: str) -> float | None:
        return self.per_seed.get(seed, {}).get(name)

    def describe(self) -> str:
        """Where and when, in a few words: ``"2 CPU cores, no GPU, 2026-11-26, seeds 0-2"``."""
        seeds = self.seeds
        span = (f"seed {seeds[0]}" if len(seeds) == 1
                else f"seeds {seeds[0]}-{seeds[-1]}" if seeds == tuple(range(seeds[0],
                                                                           seeds[-1] + 1))
                else "seeds " + ", ".join(map(str, seeds)))
        return f"{self.where}, {self.when.isoformat()}, {span}"


def by_seed(columns: Mapping[str, Sequence[float | None]],
            seeds: Sequence[int] = (0, 1, 2)) -> dict[int, dict[str, float]]:
    """``{name: (value of seed 0, of seed 1, ...)}`` (a lab module's ``MEASURED``, written as
    the notebooks' tables are) as ``Calibration.per_seed``; ``None``: not measured on that
    seed."""
    out: dict[int, dict[str, float]] = {s: {} for s in seeds}
    for name, values in columns.items():
        if len(values) != len(seeds):
            raise ValueError(f"{name}: {len(values)} values for seeds {list(seeds)}")
        for seed, v in zip(seeds, values):
            if v is not None:
                out[seed][name] = float(v)
    return out
