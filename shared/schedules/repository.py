"""Eval schedule and schedule run queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ftq.shared.evals.schemas import TERMINAL_STATUSES
from ftq.shared.models import Eval, EvalSchedule, EvalScheduleRun
from ftq.shared.pagination import paginate

CLAIM_BATCH = 50
SETTLE_BATCH = 100
CHART_RUNS = 200


def add(session: Session, row: Any) -> None:
    """Stage a row and flush."""
    session.add(row)
    session.flush()


def get_for_team(session: Session, team_id: str, schedule_id: str) -> EvalSchedule | None:
    """A team's schedule by id (another team's is None)."""
    query = select(EvalSchedule).where(
        EvalSchedule.id == schedule_id, EvalSchedule.team_id == team_id
    )
    return session.scalar(query)


def lock(session: Session, schedule_id: str) -> EvalSchedule | None:
    """A schedule under its row lock."""
    query = select(EvalSchedule).where(EvalSchedule.id == schedule_id).with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def list_page(
    session: Session, team_id: str, limit: int, after: str | None
) -> tuple[list[EvalSchedule], bool]:
    """A page of the team's schedules, newest first."""
    query = select(EvalSchedule).where(EvalSchedule.team_id == team_id)
    return paginate(session, query, EvalSchedule.id, limit=limit, after=after)


def delete(session: Session, row: EvalSchedule) -> None:
    """Delete a schedule (its runs go with it; their evals stay)."""
    session.delete(row)
    session.flush()


def due(session: Session, now: datetime) -> list[EvalSchedule]:
    """Active schedules whose next slot has come, locked; rows another tick holds are skipped."""
    query = (
        select(EvalSchedule)
        .where(EvalSchedule.status == "active", EvalSchedule.next_run_at <= now)
        .order_by(EvalSchedule.next_run_at, EvalSchedule.id)
        .limit(CLAIM_BATCH)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query.execution_options(populate_existing=True)))


def insert_run(session: Session, run: EvalScheduleRun) -> bool:
    """Insert a slot's run; False when that slot already has one (the unique constraint)."""
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        return False
    return True


def unsettled(session: Session) -> list[tuple[EvalScheduleRun, Eval]]:
    """Running runs whose eval has finished, each run locked; runs another tick holds skipped."""
    query = (
        select(EvalScheduleRun, Eval)
        .join(Eval, Eval.id == EvalScheduleRun.eval_id)
        .where(EvalScheduleRun.status == "running", Eval.status.in_(TERMINAL_STATUSES))
        .order_by(EvalScheduleRun.id)
        .limit(SETTLE_BATCH)
        .with_for_update(skip_locked=True, of=EvalScheduleRun)
    )
    rows = session.execute(query.execution_options(populate_existing=True)).tuples()
    return list(rows)


def runs_page(
    session: Session, schedule_id: str, limit: int, after: str | None
) -> tuple[list[EvalScheduleRun], bool]:
    """A page of a schedule's runs, newest first."""
    query = select(EvalScheduleRun).where(EvalScheduleRun.schedule_id == schedule_id)
    return paginate(session, query, EvalScheduleRun.id, limit=limit, after=after)


def history(session: Session, schedule_id: str) -> list[EvalScheduleRun]:
    """A schedule's latest runs, oldest first (what the chart draws)."""
    query = (
        select(EvalScheduleRun)
        .where(EvalScheduleRun.schedule_id == schedule_id)
        .order_by(EvalScheduleRun.slot.desc())
        .limit(CHART_RUNS)
    )
    return list(reversed(list(session.scalars(query))))


def last_runs(session: Session, schedule_ids: Sequence[str]) -> dict[str, EvalScheduleRun]:
    """Each schedule's latest run, in one query."""
    if not schedule_ids:
        return {}
    latest = (
        select(EvalScheduleRun.schedule_id, func.max(EvalScheduleRun.slot).label("slot"))
        .where(EvalScheduleRun.schedule_id.in_(schedule_ids))
        .group_by(EvalScheduleRun.schedule_id)
        .subquery()
    )
    query = select(EvalScheduleRun).join(
        latest,
        (EvalScheduleRun.schedule_id == latest.c.schedule_id)
        & (EvalScheduleRun.slot == latest.c.slot),
    )
    return {run.schedule_id: run for run in session.scalars(query)}
