"""Statistics, histogram, auto epochs and cost."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ftq.shared.datasets.validation import auto_n_epochs, estimate_cost, validate_file
from ftq.shared.datasets.validation.stats import Tally, billing_tokens, distribution, histogram


def linear_quantile(values: list[int], q: float) -> float:
    """numpy's default quantile, written out."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_distribution_matches_a_direct_computation(seed: int) -> None:
    rnd = random.Random(seed)
    values = [
        rnd.choice([rnd.randint(1, 50), rnd.randint(1, 5000)]) for _ in range(rnd.randint(1, 400))
    ]
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    d = distribution(counts)
    assert (d.count, d.sum, d.min, d.max) == (len(values), sum(values), min(values), max(values))
    assert d.mean == round(sum(values) / len(values), 2)
    for q, got in ((0.5, d.p50), (0.9, d.p90), (0.99, d.p99)):
        assert got == pytest.approx(linear_quantile(values, q), abs=0.01)


def test_empty_distribution() -> None:
    d = distribution({})
    assert (d.count, d.min, d.p50) == (0, None, None)


def test_tally_merge_adds_counts() -> None:
    a, b = Tally(), Tally()
    a.add(10, 2, 3)
    b.add(10, 4, 3)
    b.add(7, 1, 2)
    a.merge(b)
    assert a.total == {10: 2, 7: 1}
    assert a.messages == {3: 2, 2: 1}


def test_histogram_bins_cover_every_value() -> None:
    counts = {3: 1, 17: 4, 250: 2, 999: 1}
    h = histogram(counts)
    assert sum(h.counts) == 8
    assert len(h.edges) == len(h.counts) + 1
    assert h.edges[0] <= 3 and h.edges[-1] > 999
    width = h.edges[1] - h.edges[0]
    assert width == 50 and all(b - a == width for a, b in zip(h.edges, h.edges[1:], strict=False))
    for value, n in counts.items():
        assert h.counts[(value - h.edges[0]) // width] >= n


def test_histogram_of_one_value() -> None:
    h = histogram({42: 5})
    assert h.counts == [5] and h.edges == [42, 43]


@pytest.mark.parametrize(
    ("n", "epochs"),
    [
        (1, 25),
        (3, 25),
        (4, 25),
        (5, 20),
        (10, 10),
        (33, 3),
        (34, 3),
        (100, 3),
        (8333, 3),
        (8334, 2),
        (12_500, 2),
        (12_501, 1),
        (100_000, 1),
    ],
)
def test_auto_epochs(n: int, epochs: int) -> None:
    assert auto_n_epochs(n) == epochs


def test_billing_caps_each_example_at_the_context() -> None:
    assert billing_tokens({100: 2, 5000: 1}, 4096) == 4296
    assert billing_tokens({100: 2, 5000: 1}, None) == 5200


def test_report_cost_and_estimate(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q {i}"},
                        {"role": "assistant", "content": "a"},
                    ]
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    report = validate_file(path, model="gpt-4o-mini")
    assert report.auto_n_epochs == 5
    assert report.billing_tokens_per_epoch == report.tokens.total.sum
    expected = round(report.billing_tokens_per_epoch * 5 * 3.0 / 1e6, 4)
    assert report.estimated_cost_usd == expected
    assert estimate_cost(report, 2) == round(report.billing_tokens_per_epoch * 2 * 3.0 / 1e6, 4)
    unpriced = validate_file(path, model="gpt-4o")
    assert unpriced.estimated_cost_usd is None and estimate_cost(unpriced) is None


def test_report_is_json_serialisable(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    dumped = validate_file(path).model_dump(mode="json")
    assert json.loads(json.dumps(dumped)) == dumped
    assert set(dumped) >= {
        "ok",
        "format",
        "n_examples",
        "n_lines",
        "errors",
        "warnings",
        "tokens",
        "histogram",
        "billing_tokens_per_epoch",
        "auto_n_epochs",
        "estimated_cost_usd",
        "model",
        "encoding",
    }
