"""Scheduled re-evaluation: create, list, read, pause, resume, delete, runs, chart."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ftq.services.api.deps import AfterQuery, LimitQuery, SessionDep, TeamDep
from ftq.services.api.uow import commit
from ftq.shared.pagination import Page
from ftq.shared.schedules import service
from ftq.shared.schedules.chart import render_svg
from ftq.shared.schedules.schemas import EvalSchedule, EvalScheduleCreate, EvalScheduleRun

router = APIRouter(prefix="/v1/eval-schedules", tags=["eval-schedules"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=EvalSchedule)
def create_schedule(data: EvalScheduleCreate, session: SessionDep, team: TeamDep) -> EvalSchedule:
    """Re-score a model on a dataset at every slot of a cron expression."""
    created = service.to_schema(session, service.create(session, team, data))
    commit(session)
    return created


@router.get("", response_model=Page[EvalSchedule])
def list_schedules(
    session: SessionDep, team: TeamDep, limit: LimitQuery = 20, after: AfterQuery = None
) -> Page[EvalSchedule]:
    """The team's schedules, newest first, each with its latest run."""
    rows, more = service.list_page(session, team, limit=limit, after=after)
    return Page(data=service.to_schemas(session, rows), has_more=more)


@router.get("/{schedule_id}", response_model=EvalSchedule)
def read_schedule(schedule_id: str, session: SessionDep, team: TeamDep) -> EvalSchedule:
    """One schedule: its eval, cron, baseline, tolerance, status, next and latest run."""
    return service.to_schema(session, service.get(session, team, schedule_id))


@router.post("/{schedule_id}/pause", response_model=EvalSchedule)
def pause_schedule(schedule_id: str, session: SessionDep, team: TeamDep) -> EvalSchedule:
    """Stop starting runs until resumed."""
    row = service.pause(session, team, schedule_id)
    view = service.to_schema(session, row)
    commit(session)
    return view


@router.post("/{schedule_id}/resume", response_model=EvalSchedule)
def resume_schedule(schedule_id: str, session: SessionDep, team: TeamDep) -> EvalSchedule:
    """Start runs again from the next slot after now."""
    row = service.resume(session, team, schedule_id)
    view = service.to_schema(session, row)
    commit(session)
    return view


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_schedule(schedule_id: str, session: SessionDep, team: TeamDep) -> None:
    """Delete a schedule and its run history (the evals it ran stay)."""
    service.delete(session, team, schedule_id)
    commit(session)


@router.get("/{schedule_id}/runs", response_model=Page[EvalScheduleRun])
def list_runs(
    schedule_id: str,
    session: SessionDep,
    team: TeamDep,
    limit: LimitQuery = 20,
    after: AfterQuery = None,
) -> Page[EvalScheduleRun]:
    """A schedule's runs, newest first: slot, eval, score, baseline, regressed."""
    rows, more = service.runs_page(session, team, schedule_id, limit=limit, after=after)
    return Page(data=[service.run_schema(run) for run in rows], has_more=more)


@router.get(
    "/{schedule_id}/chart.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def schedule_chart(schedule_id: str, session: SessionDep, team: TeamDep) -> Response:
    """Each run's score with the baseline and its tolerance band."""
    row = service.get(session, team, schedule_id)
    runs = [service.run_schema(run) for run in service.history(session, team, schedule_id)]
    svg = render_svg(service.to_schema(session, row), runs)
    return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})
