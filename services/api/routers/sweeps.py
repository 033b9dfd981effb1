"""Hyperparameter sweeps: create, list, read, cancel, chart."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from ftq.services.api.deps import AfterQuery, LimitQuery, SessionDep, TeamDep
from ftq.services.api.uow import commit
from ftq.shared.jobs.schemas import check_provider_settings
from ftq.shared.pagination import Page
from ftq.shared.settings import get_settings
from ftq.shared.sweeps import service
from ftq.shared.sweeps.chart import render_svg
from ftq.shared.sweeps.schemas import Sweep, SweepCreate

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Sweep)
def create_sweep(data: SweepCreate, session: SessionDep, team: TeamDep) -> Sweep:
    """Queue every trial of a sweep, or refuse it (too many trials, over budget) with none."""
    check_provider_settings(data.base, data.base.provider or get_settings().provider)
    sweep = service.to_schema(session, service.create(session, team, data))
    commit(session)
    return sweep


@router.get("", response_model=Page[Sweep])
def list_sweeps(
    session: SessionDep, team: TeamDep, limit: LimitQuery = 20, after: AfterQuery = None
) -> Page[Sweep]:
    """The team's sweeps, newest first."""
    rows, more = service.list_page(session, team, limit=limit, after=after)
    return Page(data=[service.to_schema(session, row) for row in rows], has_more=more)


@router.get("/{sweep_id}", response_model=Sweep)
def read_sweep(sweep_id: str, session: SessionDep, team: TeamDep) -> Sweep:
    """One sweep with every trial's hyperparameters, score, cost and status."""
    return service.to_schema(session, service.get(session, team, sweep_id))


@router.post("/{sweep_id}/cancel", response_model=Sweep)
def cancel_sweep(sweep_id: str, session: SessionDep, team: TeamDep) -> Sweep:
    """Cancel a running sweep and its unfinished trials."""
    sweep = service.cancel(session, team, sweep_id)
    commit(session)
    return service.to_schema(session, sweep)


@router.get(
    "/{sweep_id}/chart.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def sweep_chart(sweep_id: str, session: SessionDep, team: TeamDep) -> Response:
    """Each trial's eval score, the winner highlighted."""
    svg = render_svg(service.to_schema(session, service.get(session, team, sweep_id)))
    return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})
