"""Exact per-example statistics in bounded memory, epochs and cost.

Counts are kept as {value: number of examples}: its size is bounded by the number of distinct
values (at most the longest example), not by the number of examples, and it merges by addition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ftq.shared.datasets.validation.report import Distribution, Histogram, ValidationReport

MIN_EPOCHS, MAX_EPOCHS, DEFAULT_EPOCHS = 1, 25, 3
MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 100, 25_000
HISTOGRAM_BINS = 20


@dataclass
class Tally:
    """Value counts of total tokens, assistant tokens and messages per example."""

    total: dict[int, int] = field(default_factory=dict)
    assistant: dict[int, int] = field(default_factory=dict)
    messages: dict[int, int] = field(default_factory=dict)

    def add(self, total: int, assistant: int, messages: int) -> None:
        """Count one example."""
        self.total[total] = self.total.get(total, 0) + 1
        self.assistant[assistant] = self.assistant.get(assistant, 0) + 1
        self.messages[messages] = self.messages.get(messages, 0) + 1

    def merge(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        for mine, theirs in (
            (self.total, other.total),
            (self.assistant, other.assistant),
            (self.messages, other.messages),
        ):
            for value, n in theirs.items():
                mine[value] = mine.get(value, 0) + n


def _nth(items: list[tuple[int, int]], k: int) -> int:
    """The k-th smallest value (0-based) of sorted (value, count) pairs."""
    seen = 0
    for value, n in items:
        seen += n
        if k < seen:
            return value
    return items[-1][0]


def percentile(items: list[tuple[int, int]], count: int, q: float) -> float:
    """The q-quantile with linear interpolation (numpy's default method)."""
    pos = q * (count - 1)
    low = math.floor(pos)
    lo, hi = _nth(items, low), _nth(items, min(low + 1, count - 1))
    return round(lo + (hi - lo) * (pos - low), 2)


def distribution(counts: dict[int, int]) -> Distribution:
    """min, max, mean, p50, p90 and p99 of value counts."""
    count = sum(counts.values())
    if count == 0:
        return Distribution()
    items = sorted(counts.items())
    total = sum(value * n for value, n in items)
    return Distribution(
        count=count,
        sum=total,
        min=items[0][0],
        max=items[-1][0],
        mean=round(total / count, 2),
        p50=percentile(items, count, 0.5),
        p90=percentile(items, count, 0.9),
        p99=percentile(items, count, 0.99),
    )


def _nice_width(span: int, bins: int) -> int:
    """A bin width of 1, 2 or 5 times a power of ten covering `span` in about `bins` bins."""
    raw = max(1.0, span / bins)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def histogram(counts: dict[int, int], bins: int = HISTOGRAM_BINS) -> Histogram:
    """Equal-width bins with round edges from the smallest to the largest value."""
    if not counts:
        return Histogram()
    low, high = min(counts), max(counts)
    width = _nice_width(high - low + 1, bins)
    start = low // width * width
    n_bins = (high - start) // width + 1
    hist = [0] * n_bins
    for value, n in counts.items():
        hist[(value - start) // width] += n
    return Histogram(edges=[start + i * width for i in range(n_bins + 1)], counts=hist)


def billing_tokens(totals: dict[int, int], context: int | None) -> int:
    """Tokens billed per epoch: each example counted up to the training context."""
    cap = context if context is not None else math.inf
    return int(sum(min(value, cap) * n for value, n in totals.items()))


def auto_n_epochs(n_examples: int) -> int:
    """The epochs OpenAI picks for `n_epochs: "auto"`: 3, raised or lowered toward 100..25,000."""
    if n_examples <= 0:
        return DEFAULT_EPOCHS
    if n_examples * DEFAULT_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * DEFAULT_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return DEFAULT_EPOCHS


def cost_usd(billing: int, n_epochs: int, price_per_1m: float | None) -> float | None:
    """Training cost in USD, or None when the price is unknown."""
    if price_per_1m is None:
        return None
    return round(billing * n_epochs * price_per_1m / 1_000_000, 4)


def estimate_cost(report: ValidationReport, n_epochs: int | None = None) -> float | None:
    """The report's cost for `n_epochs` (the auto count when None)."""
    epochs = n_epochs if n_epochs is not None else auto_n_epochs(report.n_examples)
    return cost_usd(report.billing_tokens_per_epoch, epochs, report.price_per_1m_tokens)
