"""How sure a score is: bootstrap intervals of each mean, and paired comparisons of two models.

- `interval(scores)`: the percentile bootstrap 95% interval of the mean: `RESAMPLES` resamples
  of the n scores drawn with replacement, each resample's mean, the 2.5th and 97.5th percentiles.
- `compare(base, other)`: on the items both models answered, d_i = other_i - base_i; improved
  (d_i > 0), regressed (d_i < 0), unchanged; the mean difference and its paired bootstrap 95%
  interval (items resampled, both models' scores kept together); `significant` when that
  interval excludes 0.

Every draw comes from numpy's PCG64 seeded with `SEED`, so the same scores always give the same
interval (a reread eval does not wobble). Fewer than 2 scores: no interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SEED = 20261203
RESAMPLES = 2000
CONFIDENCE = 0.95
MAX_LISTED = 20  # item indices listed per direction (the counts are complete)
_CHUNK_CELLS = 1_000_000  # resampled cells drawn at once (bounds memory on big evals)
_TIE = 1e-9


@dataclass(frozen=True)
class Comparison:
    """One model against another on the items both answered."""

    n: int
    improved: int
    regressed: int
    unchanged: int
    improved_items: list[int]
    regressed_items: list[int]
    difference: float | None
    interval: tuple[float, float] | None

    @property
    def significant(self) -> bool:
        """The interval of the mean difference excludes 0."""
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)


def interval(scores: list[float]) -> tuple[float, float] | None:
    """The seeded percentile-bootstrap 95% interval of the mean (None under 2 scores)."""
    if len(scores) < 2:
        return None
    return _bootstrap(np.asarray(scores, dtype=float))


def compare(base: Mapping[int, float], other: Mapping[int, float]) -> Comparison:
    """`other` against `base` item by item (item index -> score; unanswered items absent)."""
    shared = sorted(set(base) & set(other))
    diffs = [other[i] - base[i] for i in shared]
    improved = [i for i, d in zip(shared, diffs, strict=True) if d > _TIE]
    regressed = [i for i, d in zip(shared, diffs, strict=True) if d < -_TIE]
    return Comparison(
        n=len(shared),
        improved=len(improved),
        regressed=len(regressed),
        unchanged=len(shared) - len(improved) - len(regressed),
        improved_items=improved[:MAX_LISTED],
        regressed_items=regressed[:MAX_LISTED],
        difference=float(np.mean(diffs)) if diffs else None,
        interval=interval(diffs),
    )


def _bootstrap(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    if np.all(values == values[0]):  # every resample has the same mean
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(SEED)
    rows = max(1, _CHUNK_CELLS // n)
    means: list[np.ndarray] = []
    left = RESAMPLES
    while left > 0:
        size = min(rows, left)
        means.append(values[rng.integers(0, n, size=(size, n))].mean(axis=1))
        left -= size
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.percentile(np.concatenate(means), [tail, 100.0 - tail])
    return _clean(low), _clean(high)


def _clean(value: float) -> float:
    """Rounded so float noise does not make an interval look like it excludes 0."""
    return round(float(value), 6)
