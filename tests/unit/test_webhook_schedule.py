"""The webhook retry schedule: steps, jitter, Retry-After, exhaustion."""

from __future__ import annotations

import math
import random

import pytest

from ftq.shared.webhooks.schedule import MAX_ATTEMPTS, MAX_RETRY_AFTER_SECONDS, next_delay

STEPS = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


class FixedRng:
    """An rng whose uniform() always returns `value`."""

    def __init__(self, value: float) -> None:
        self.value = value

    def uniform(self, a: float, b: float) -> float:
        return self.value


def test_steps_without_jitter_follow_the_design():
    assert MAX_ATTEMPTS == 8
    assert [next_delay(n, rng=FixedRng(0.0)) for n in range(8)] == STEPS


def test_attempts_exhausted_or_negative_give_none():
    assert next_delay(8) is None
    assert next_delay(9, retry_after=10) is None
    assert next_delay(-1) is None


def test_jitter_stays_within_twenty_percent_and_varies():
    rng = random.Random(7)
    samples = [next_delay(2, rng=rng) or 0.0 for _ in range(500)]
    assert all(240 <= s <= 360 for s in samples)
    assert len(set(samples)) > 100
    assert min(samples) < 260 and max(samples) > 340


def test_jitter_extremes_and_never_negative():
    assert next_delay(1, rng=FixedRng(-0.2)) == pytest.approx(4.0)
    assert next_delay(1, rng=FixedRng(0.2)) == pytest.approx(6.0)
    assert next_delay(1, rng=FixedRng(-5.0)) == 0.0
    assert next_delay(0, rng=random.Random(1)) == 0.0


def test_default_rng_is_the_random_module():
    random.seed(3)
    first = next_delay(3)
    random.seed(3)
    assert next_delay(3) == first


def test_retry_after_longer_than_the_step_wins():
    assert next_delay(1, retry_after=120, rng=FixedRng(0.0)) == 120
    assert next_delay(0, retry_after=30, rng=FixedRng(0.0)) == 30


def test_retry_after_shorter_than_the_step_is_ignored():
    assert next_delay(3, retry_after=60, rng=FixedRng(0.0)) == 1800


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(1e9, MAX_RETRY_AFTER_SECONDS), (math.inf, MAX_RETRY_AFTER_SECONDS), (-50, 5), (math.nan, 5)],
)
def test_retry_after_is_capped_and_sanitised(retry_after, expected):
    assert next_delay(1, retry_after=retry_after, rng=FixedRng(0.0)) == expected
