"""Bootstrap intervals and paired comparisons: seeded, sensible widths, honest about noise.

Also the CLI's eval table, and migration 0011 (the grader's columns) up and down.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, inspect

from ftq.services.cli.team.render import eval_table
from ftq.shared.evals import stats
from ftq.shared.migrate import downgrade, upgrade


def test_interval_is_seeded_and_contains_the_mean() -> None:
    scores = [1.0] * 18 + [0.0] * 12
    first, again = stats.interval(scores), stats.interval(scores)
    assert first == again
    assert first is not None
    low, high = first
    assert low < 0.6 < high
    # 30 binary items at 0.6: the standard error is about 0.09, so the 95% width is about 0.35.
    assert 0.25 < high - low < 0.45


def test_interval_needs_two_scores_and_collapses_when_all_agree() -> None:
    assert stats.interval([]) is None
    assert stats.interval([1.0]) is None
    assert stats.interval([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_a_small_difference_on_30_items_is_not_significant() -> None:
    base = {i: float(i % 2) for i in range(30)}
    other = dict(base)
    other[0] = 1.0  # one item improved: +0.033
    found = stats.compare(base, other)
    assert (found.n, found.improved, found.regressed, found.unchanged) == (30, 1, 0, 29)
    assert found.improved_items == [0]
    assert found.difference is not None and abs(found.difference - 1 / 30) < 1e-9
    assert found.interval is not None and found.interval[0] <= 0.0
    assert not found.significant


def test_a_consistent_improvement_is_significant() -> None:
    base = {i: 0.0 for i in range(40)}
    other = {i: 1.0 if i < 30 else 0.0 for i in range(40)}
    other[39] = 0.0
    base[38] = 1.0  # one regression
    found = stats.compare(base, other)
    assert found.improved == 30 and found.regressed == 1 and found.regressed_items == [38]
    assert found.interval is not None and found.interval[0] > 0
    assert found.significant


def test_only_items_both_models_answered_are_paired_and_lists_are_capped() -> None:
    base = {i: 0.0 for i in range(100)}
    other = {i: 1.0 for i in range(50, 150)}
    found = stats.compare(base, other)
    assert found.n == 50 and found.improved == 50
    assert len(found.improved_items) == stats.MAX_LISTED
    assert found.improved_items[0] == 50
    empty = stats.compare({}, {1: 1.0})
    assert empty.n == 0 and empty.difference is None and empty.interval is None
    assert not empty.significant


def test_a_big_eval_is_fast() -> None:
    scores = [float(i % 3 == 0) for i in range(5000)]
    started = time.monotonic()
    assert stats.interval(scores) is not None
    assert time.monotonic() - started < 2.0


def test_the_cli_table_shows_the_interval_and_says_when_a_difference_is_noise() -> None:
    from rich.console import Console

    comparison = {
        "against": "base",
        "n": 30,
        "improved": 2,
        "regressed": 1,
        "unchanged": 27,
        "improved_items": [3, 7],
        "regressed_items": [9],
        "difference": 0.0333,
        "interval": [-0.0333, 0.1],
        "significant": False,
    }
    ev = {
        "id": "ev_1",
        "dataset": "ds_1",
        "grader": "exact",
        "results": [
            {"model": "base", "n": 30, "score": 0.5, "errors": 0, "interval": [0.33, 0.67]},
            {
                "model": "ft:base:x",
                "n": 30,
                "score": 0.5333,
                "errors": 0,
                "interval": [0.37, 0.7],
                "comparison": comparison,
            },
        ],
    }
    console = Console(width=160, record=True)
    console.print(eval_table(ev))
    text = console.export_text()
    assert "0.330-0.670" in text
    assert "within noise" in text
    assert "+2/-1" in text
    significant = {**comparison, "interval": [0.01, 0.1], "significant": True}
    ev["results"][1]["comparison"] = significant  # type: ignore[index]
    console = Console(width=160, record=True)
    console.print(eval_table(ev))
    assert "within noise" not in console.export_text()


def test_migration_0011_adds_the_grader_columns_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"

    def columns(table: str) -> set[str]:
        engine = create_engine(url)
        try:
            return {c["name"] for c in inspect(engine).get_columns(table)}
        finally:
            engine.dispose()

    upgrade(url, "0011")
    assert "grader_config" in columns("evals") and "reason" in columns("eval_outputs")
    downgrade(url, "0010")
    assert "grader_config" not in columns("evals") and "reason" not in columns("eval_outputs")
    upgrade(url, "0011")
    assert "grader_config" in columns("evals")
