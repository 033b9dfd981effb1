"""Training diagnosis on hand-built curves: each kind is found, a healthy curve finds nothing."""

from __future__ import annotations

import math
import random

from ftq.shared.jobs.diagnosis import Point, diagnose, kinds

N = 100


def _trend(step: int, start: float = 2.0, floor: float = 0.2, rate: float = 4.0) -> float:
    return floor + (start - floor) * math.exp(-rate * step / N)


def _jitter(rng: random.Random, size: float = 0.04) -> float:
    return 1 + size * (rng.random() - 0.5)


def _curve(train: list[float], valid: list[float] | None = None, acc: bool = True) -> list[Point]:
    return [
        Point(
            step=i + 1,
            train_loss=loss,
            valid_loss=valid[i] if valid else None,
            train_mean_token_accuracy=max(0.0, 1 - 0.3 * loss) if acc else None,
            total_steps=len(train),
        )
        for i, loss in enumerate(train)
    ]


def _healthy(seed: int = 1) -> list[Point]:
    rng = random.Random(seed)
    train = [_trend(s) * _jitter(rng) for s in range(1, N + 1)]
    valid = [_trend(s) * 1.08 * _jitter(rng) for s in range(1, N + 1)]
    return _curve(train, valid)


def test_a_healthy_curve_finds_nothing() -> None:
    for seed in range(5):
        assert diagnose(_healthy(seed))["findings"] == []
    assert diagnose([])["findings"] == []


def test_overfitting_names_the_validation_minimum_and_removes_epochs() -> None:
    rng = random.Random(2)
    train = [_trend(s, floor=0.05) * _jitter(rng) for s in range(1, N + 1)]
    valid = [(_trend(s) * 1.05 + 0.012 * max(0, s - 35)) * _jitter(rng) for s in range(1, N + 1)]
    result = diagnose(_curve(train, valid), hyperparameters={"n_epochs": 4}, final=True)
    assert kinds(result) == ["overfitting"]
    found = result["findings"][0]
    assert 25 <= found["evidence"]["steps"][0] <= 50, "the minimum of the validation loss"
    assert found["suggestion"] == {"n_epochs": 2}  # minimum before half the run: two fewer
    assert result["final"] is True


def test_a_widening_gap_is_overfitting_too() -> None:
    train = [_trend(s, floor=0.02) for s in range(1, N + 1)]
    valid = [_trend(s, floor=0.02) + 0.4 * s / N for s in range(1, N + 1)]  # flat-ish valid
    result = diagnose(_curve(train, valid), hyperparameters={"n_epochs": 3})
    assert kinds(result) == ["overfitting"]


def test_underfitting_high_flat_loss_low_accuracy_adds_epochs() -> None:
    train = [1.8 + 0.4 * math.exp(-10 * s / N) for s in range(1, N + 1)]
    result = diagnose(_curve(train), hyperparameters={"n_epochs": "auto"}, auto_epochs=3)
    assert kinds(result) == ["underfitting"]
    assert result["findings"][0]["suggestion"] == {"n_epochs": 5}
    assert "does not follow the training data" in result["findings"][0]["message"]


def test_a_loss_that_does_not_fall_is_not_converging() -> None:
    train = [1.5 + 0.01 * math.sin(s) for s in range(1, N + 1)]
    result = diagnose(_curve(train), hyperparameters={"learning_rate_multiplier": 0.5})
    assert kinds(result) == ["not_converging"]
    assert result["findings"][0]["suggestion"] == {"learning_rate_multiplier": 1.0}


def test_a_rising_loss_is_diverging_and_halves_the_learning_rate() -> None:
    train = [_trend(s) if s < 40 else _trend(40) * math.exp(0.05 * (s - 40)) for s in range(1, N)]
    result = diagnose(
        _curve(train), hyperparameters={"learning_rate_multiplier": 2, "batch_size": 4}
    )
    assert kinds(result) == ["diverging"]
    assert result["findings"][0]["suggestion"] == {"learning_rate_multiplier": 1.0, "batch_size": 8}


def test_nan_is_diverging_at_once() -> None:
    points = [Point(step=1, train_loss=2.0), Point(step=2, train_loss=float("nan"))]
    result = diagnose(points)
    assert kinds(result) == ["diverging"]
    assert result["findings"][0]["evidence"] == {"steps": [2], "values": [None]}
    assert result["findings"][0]["suggestion"] == {"learning_rate_multiplier": 0.5}


def test_noisy_doubles_the_batch_size_or_lowers_the_learning_rate() -> None:
    rng = random.Random(3)
    train = [_trend(s) * _jitter(rng, 1.2) for s in range(1, N + 1)]
    assert kinds(diagnose(_curve(train), hyperparameters={"batch_size": 8})) == ["noisy"]
    with_batch = diagnose(_curve(train), hyperparameters={"batch_size": 8})["findings"][0]
    assert with_batch["suggestion"] == {"batch_size": 16}
    auto = diagnose(_curve(train))["findings"][0]
    assert auto["suggestion"] == {"learning_rate_multiplier": 0.5}
    assert len(auto["evidence"]["steps"]) <= 12


def test_too_few_points_say_nothing_but_nan() -> None:
    train = [2.0, 2.1, 2.2, 2.5]
    assert diagnose(_curve(train))["findings"] == []


def test_jobs_watch_prints_each_finding_with_its_next_run() -> None:
    from ftq.services.cli.team import jobs as cli_jobs

    finding = {
        "kind": "overfitting",
        "evidence": {"steps": [17, 48], "values": [0.41, 0.9]},
        "suggestion": {"n_epochs": 2},
        "message": "the validation loss rose",
    }
    line = cli_jobs._finding_line(finding)
    assert line == "overfitting: the validation loss rose (steps 17-48; next run: n_epochs=2)"
    job = {
        "id": "ftj_x",
        "status": "succeeded",
        "fine_tuned_model": "ft:gpt-4o-mini:org::abc",
        "diagnosis": {"final": True, "findings": [finding]},
    }
    with cli_jobs.console.capture() as captured:
        cli_jobs._summary(job)
    lines = captured.get().splitlines()
    assert "overfitting: the validation loss rose" in lines[1]
    assert "ft:gpt-4o-mini:org::abc" in lines[-1], "the fine-tuned model stays the last line"
