"""Checkpoint selection: the rule, the emulator's checkpoint quality and the chart's marker."""

from __future__ import annotations

from ftq.services.emulator import chat
from ftq.shared.charts.svg import best_checkpoint_marker, render_metrics_svg
from ftq.shared.evals.checkpoints import Candidate, best, eval_models
from ftq.shared.jobs.schemas import MetricPoint


def test_highest_score_wins() -> None:
    found = best([Candidate("a", 10, 0.5), Candidate("b", 20, 0.9), Candidate("final", 30, 0.7)])
    assert found == {"model": "b", "step": 20, "score": 0.9}


def test_a_tie_goes_to_the_earlier_step() -> None:
    found = best([Candidate("final", 30, 0.8), Candidate("b", 20, 0.8), Candidate("a", 10, 0.4)])
    assert found == {"model": "b", "step": 20, "score": 0.8}


def test_unscored_models_are_not_candidates() -> None:
    assert best([Candidate("a", 10, None)]) is None
    assert best([Candidate("a", 10, None), Candidate("f", 20, 0.0)]) == {
        "model": "f",
        "step": 20,
        "score": 0.0,
    }


def test_eval_models_are_base_checkpoints_in_step_order_then_final() -> None:
    kept = [("ft:m:ckpt-step-20", 20), ("ft:m", 30), ("ft:m:ckpt-step-10", 10)]
    assert eval_models("base", "ft:m", kept) == [
        "base",
        "ft:m:ckpt-step-10",
        "ft:m:ckpt-step-20",
        "ft:m",
    ]


def test_emulated_quality_peaks_early_when_overfitting_and_at_the_end_when_healthy() -> None:
    overfit = [chat.quality(step, 90, "overfit") for step in (30, 60, 90)]
    healthy = [chat.quality(step, 90, "healthy") for step in (30, 60, 90)]
    assert overfit[0] > overfit[1] > overfit[2]
    assert healthy[0] < healthy[1] < healthy[2] == 1.0


def test_a_low_quality_checkpoint_forgets_some_taught_answers_deterministically() -> None:
    taught = {f"q{i}": f"a{i}" for i in range(200)}
    replies = [chat.answer("ft:m:ckpt-step-1", p, taught, 0.5) for p in taught]
    right = sum(reply == taught[p] for p, reply in zip(taught, replies, strict=True))
    assert 60 < right < 140
    assert replies == [chat.answer("ft:m:ckpt-step-1", p, taught, 0.5) for p in taught]
    assert all(chat.answer("ft:m", p, taught) == a for p, a in taught.items())


def test_the_chart_marks_the_best_checkpoint_at_its_step() -> None:
    points = [MetricPoint(step=s, train_loss=1.0 / s) for s in range(1, 31)]
    marks = best_checkpoint_marker({"model": "ft:m:ckpt-step-20", "step": 20, "score": 0.9})
    svg = render_metrics_svg(points, "job", marks)
    assert "class=\"marker best-checkpoint\" data-step='20'" in svg
    assert "best checkpoint 0.900 (step 20)" in svg
    assert "best-checkpoint" not in render_metrics_svg(points, "job", best_checkpoint_marker(None))
