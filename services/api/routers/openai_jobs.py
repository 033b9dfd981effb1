"""OpenAI's `/v1/fine_tuning/jobs` over ftq's jobs (the SDK's `client.fine_tuning.jobs`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ftq.services.api import loop_reads
from ftq.services.api.deps import CachedTeamDep, ReadSessionDep, SessionDep, TeamDep
from ftq.services.api.idempotency import IdempotencyDep
from ftq.services.api.uow import commit
from ftq.shared.compat import jobs as service
from ftq.shared.compat.schemas import FineTuningJobCreate
from ftq.shared.db import read_only
from ftq.shared.models import Team

router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["openai-compatible"])

OpenAILimit = Annotated[int, Query(ge=1, le=100)]


def _metadata_filter(request: Request) -> dict[str, str]:
    """`metadata[key]=value` query parameters, as the SDK sends them."""
    pairs = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]"):
            pairs[name[len("metadata[") : -1]] = value
    return pairs


@router.post("", response_model=None)
def create_job(
    body: FineTuningJobCreate, session: SessionDep, team: TeamDep, idempotency: IdempotencyDep
) -> dict[str, Any] | Response:
    """Create a fine-tuning job from OpenAI's request body."""
    if (replay := idempotency.begin(session, body)) is not None:
        return replay
    job = service.job_object(service.create(session, team, body))
    idempotency.save(session, status.HTTP_200_OK, job)
    commit(session)
    return job


@router.get("", response_model=None)
def list_jobs(
    request: Request,
    session: SessionDep,
    team: TeamDep,
    after: str | None = None,
    limit: OpenAILimit = 20,
) -> dict[str, Any]:
    """The team's jobs, newest first (`after` = the last id of the previous page)."""
    rows, more = service.list_page(
        session, team, after=after, limit=limit, metadata=_metadata_filter(request)
    )
    return {"object": "list", "data": [service.job_object(r) for r in rows], "has_more": more}


@router.get("/{fine_tuning_job_id}", response_model=None)
async def retrieve_job(
    fine_tuning_job_id: str, session: ReadSessionDep, team: CachedTeamDep
) -> dict[str, Any]:
    """One job."""
    # The route the SDK's `retrieve` polls: a cached key and, on Postgres, one event-loop read.
    pool = loop_reads.pool_for(session)
    if pool is None:
        return await run_in_threadpool(_job_object, session, team, fine_tuning_job_id)
    row = await loop_reads.job_row(pool, team.id, service.ftq_id(fine_tuning_job_id))
    if row is None:
        raise service.job_not_found(fine_tuning_job_id)
    return service.job_object(row)


def _job_object(session: Session, team: Team, fine_tuning_job_id: str) -> dict[str, Any]:
    return service.job_object(service.get(read_only(session), team, fine_tuning_job_id))


@router.post("/{fine_tuning_job_id}/cancel", response_model=None)
def cancel_job(fine_tuning_job_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Cancel a job that has not finished (also at the provider)."""
    job = service.cancel(session, team, fine_tuning_job_id)
    commit(session)
    return service.job_object(job)


@router.post("/{fine_tuning_job_id}/pause", response_model=None)
def pause_job(fine_tuning_job_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Pause a running job at its provider."""
    job = service.control(session, team, fine_tuning_job_id, "pause")
    commit(session)
    return service.job_object(job)


@router.post("/{fine_tuning_job_id}/resume", response_model=None)
def resume_job(fine_tuning_job_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Resume a paused job at its provider."""
    job = service.control(session, team, fine_tuning_job_id, "resume")
    commit(session)
    return service.job_object(job)


@router.get("/{fine_tuning_job_id}/events", response_model=None)
def list_events(
    fine_tuning_job_id: str,
    session: SessionDep,
    team: TeamDep,
    after: str | None = None,
    limit: OpenAILimit = 20,
) -> dict[str, Any]:
    """The job's events, newest first, metric events with OpenAI's `data`."""
    rows, more = service.events_page(session, team, fine_tuning_job_id, after=after, limit=limit)
    return {"object": "list", "data": [service.event_object(r) for r in rows], "has_more": more}


@router.get("/{fine_tuning_job_id}/checkpoints", response_model=None)
def list_checkpoints(
    fine_tuning_job_id: str,
    session: SessionDep,
    team: TeamDep,
    after: str | None = None,
    limit: OpenAILimit = 10,
) -> dict[str, Any]:
    """The job's checkpoints, newest first; each names a usable model."""
    rows, more = service.checkpoints_page(
        session, team, fine_tuning_job_id, after=after, limit=limit
    )
    data = [service.checkpoint_object(r) for r in rows]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}
