"""Eval schedule slots are claimed from Postgres exactly once: two racing beats, a crashed tick.

Committed rows on the test database (each tick has its own session and transaction, as two beat
processes would), cleaned up after each test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import schedules as tasks
from ftq.shared.db import get_sessionmaker
from ftq.shared.models import (
    Dataset,
    Eval,
    EvalSchedule,
    EvalScheduleRun,
    OutboxMessage,
    Team,
    WebhookDelivery,
)
from ftq.shared.schedules import service
from ftq.shared.schedules.schemas import EvalScheduleCreate
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks import service as webhooks
from ftq.shared.webhooks.schemas import WebhookEndpointCreate
from tests.factories import dataset_row, team_row

MODEL = "gpt-4o-mini-2024-07-18"


def _beat() -> dict[str, int]:
    """One beat's `schedules.tick` (its body: Celery's task call is per-thread state)."""
    return dict(tasks.tick.run())


class WorkerKilled(BaseException):
    """Stands for the beat's worker dying before its transaction committed."""


@pytest.fixture
def due_schedule(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A committed schedule whose slot is due; its team (and all it owns) removed afterwards."""
    monkeypatch.setattr(tasks, "relay_now", lambda: 0)  # no broker: the outbox rows stay
    make = get_sessionmaker()
    with make() as db:
        first_outbox = db.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
        team, _ = team_row(db, f"sched-{uuid.uuid4().hex[:8]}")
        dataset = _dataset(team)
        db.add(dataset)
        db.flush()
        data = EvalScheduleCreate(
            model=MODEL, dataset=dataset.id, grader="exact", cron="*/5 * * * *"
        )
        schedule = service.create(db, team, data)
        schedule.next_run_at = utcnow() - timedelta(minutes=12)  # two slots missed
        db.commit()
        team_id, schedule_id = team.id, schedule.id
    try:
        yield schedule_id
    finally:
        with make() as db:
            db.execute(delete(Team).where(Team.id == team_id))
            db.execute(delete(OutboxMessage).where(OutboxMessage.id > first_outbox))
            db.commit()


def _runs(schedule_id: str) -> list[EvalScheduleRun]:
    with get_sessionmaker()() as db:
        query = select(EvalScheduleRun).where(EvalScheduleRun.schedule_id == schedule_id)
        return list(db.scalars(query))


def _evals_of(db: Session, schedule_id: str) -> int:
    query = select(func.count()).where(Eval.name.like(f"schedule {schedule_id} %"))
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0


def _slow_eval_create(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Hold the claiming transaction open a while after the eval is created."""
    real = service.evals.create

    def slow(*args: Any, **kwargs: Any) -> Any:
        row = real(*args, **kwargs)
        time.sleep(seconds)
        return row

    monkeypatch.setattr(service.evals, "create", slow)


def test_two_racing_beats_run_a_due_slot_once(
    due_schedule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_eval_create(monkeypatch, 0.5)
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def beat() -> None:
        barrier.wait(10)
        results.append(_beat())

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r["started"] for r in results) == [0, 1]
    [run] = _runs(due_schedule)
    with get_sessionmaker()() as db:
        assert _evals_of(db, due_schedule) == 1
        schedule = db.get(EvalSchedule, due_schedule)
        assert schedule is not None
        next_run = as_utc(schedule.next_run_at)
        assert next_run is not None and next_run > utcnow()
        assert db.get(Eval, run.eval_id) is not None
    # One catch-up run for the missed slots: the latest slot, not the oldest one.
    slot = as_utc(run.slot)
    assert slot is not None and utcnow() - timedelta(minutes=5) < slot <= utcnow()
    assert slot.minute % 5 == 0 and slot.second == 0
    assert _beat()["started"] == 0, "a third beat finds nothing due"
    assert len(_runs(due_schedule)) == 1


def test_a_tick_that_died_before_commit_is_retried_into_one_run(
    due_schedule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.evals.create

    def create_then_die(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise WorkerKilled

    monkeypatch.setattr(service.evals, "create", create_then_die)
    with pytest.raises(WorkerKilled):
        _beat()
    assert _runs(due_schedule) == [], "the dead tick's run was rolled back"
    monkeypatch.setattr(service.evals, "create", real)
    assert _beat()["started"] == 1
    assert _beat()["started"] == 0
    [run] = _runs(due_schedule)
    with get_sessionmaker()() as db:
        assert _evals_of(db, due_schedule) == 1
        assert db.get(Eval, run.eval_id) is not None


def test_the_unique_slot_holds_even_without_the_row_lock(due_schedule: str) -> None:
    """Two sessions that both read the schedule unlocked still insert one run for the slot."""
    make = get_sessionmaker()
    barrier = threading.Barrier(2)
    started: list[bool] = []
    now = utcnow()

    def claim() -> None:
        with make() as db:
            schedule = db.get(EvalSchedule, due_schedule)
            assert schedule is not None
            barrier.wait(10)
            started.append(service._start(db, schedule, now) is not None)
            time.sleep(0.3)
            db.commit()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(started) == [False, True]
    assert len(_runs(due_schedule)) == 1
    with make() as db:
        assert _evals_of(db, due_schedule) == 1


def test_racing_settlements_emit_one_regression(
    due_schedule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = get_sessionmaker()
    assert _beat()["started"] == 1
    [run] = _runs(due_schedule)
    with make() as db:
        schedule = db.get(EvalSchedule, due_schedule)
        assert schedule is not None
        schedule.baseline_score = 0.9
        team = db.get(Team, schedule.team_id)
        assert team is not None
        hook = WebhookEndpointCreate(url="http://127.0.0.1:9/hook", events=["eval.regressed"])
        webhooks.create_endpoint(db, team, hook)
        row = db.get(Eval, run.eval_id)
        assert row is not None
        row.status, row.n_items, row.completed_at = "completed", 0, utcnow()
        db.commit()
    monkeypatch.setattr(service, "_item_scores", lambda *_: {0: 0.0, 1: 1.0})
    real_view = service.evals.to_schema

    def view_scoring_half(db: Session, eval_row: Eval) -> Any:
        view = real_view(db, eval_row)
        view.results[0].score = 0.5
        time.sleep(0.3)  # hold the run's lock while the other beat looks
        return view

    monkeypatch.setattr(service.evals, "to_schema", view_scoring_half)
    barrier = threading.Barrier(2)
    settled: list[int] = []

    def beat() -> None:
        barrier.wait(10)
        settled.append(_beat()["settled"])

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(settled) == [0, 1]
    [run] = _runs(due_schedule)
    assert (run.status, run.score, run.regressed) == ("completed", 0.5, True)
    with make() as db:
        team_id = db.scalar(select(EvalSchedule.team_id).where(EvalSchedule.id == due_schedule))
        query = select(WebhookDelivery.event_type).where(WebhookDelivery.team_id == team_id)
        assert list(db.scalars(query)) == ["eval.regressed"]
    assert _beat()["settled"] == 0, "a later beat settles nothing again"


def _dataset(team: Team) -> Dataset:
    return dataset_row(team, n_examples=12)
