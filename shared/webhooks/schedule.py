"""The webhook retry schedule of DESIGN.md, with jitter and Retry-After."""

from __future__ import annotations

import math
import random
from typing import Protocol

# Delay before attempt n+1, indexed by the attempts already made: immediately, 5 s, 5 min,
# 30 min, 2 h, 5 h, 10 h, 10 h.
SCHEDULE_SECONDS: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE_SECONDS)
JITTER = 0.2
MAX_RETRY_AFTER_SECONDS = 10 * 3600.0


class _Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def next_delay(
    attempts_made: int,
    retry_after: float | None = None,
    rng: _Uniform = random,
    scale: float = 1.0,
) -> float | None:
    """Seconds to wait before the next attempt, or None when every attempt has been made."""
    if attempts_made < 0 or attempts_made >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE_SECONDS[attempts_made] * scale
    delay = max(0.0, base * (1 + rng.uniform(-JITTER, JITTER)))
    return max(delay, _capped_retry_after(retry_after))


def _capped_retry_after(retry_after: float | None) -> float:
    """The receiver's Retry-After within [0, 10 h]: it may slow us down, but not stall delivery."""
    if retry_after is None or math.isnan(retry_after):
        return 0.0
    return min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
