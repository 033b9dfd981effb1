"""Jobs: create, list, read, cancel, pause, resume, retry, events, metrics, checkpoints, results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ftq.services.api import loop_reads
from ftq.services.api.deps import (
    AfterQuery,
    CachedTeamDep,
    CreatingTeamDep,
    LimitQuery,
    ReadSessionDep,
    SessionDep,
    TeamDep,
)
from ftq.services.api.downloads import blob_download
from ftq.services.api.idempotency import CreatingIdempotencyDep, Idempotency, IdempotencyDep
from ftq.services.api.uow import commit
from ftq.shared.db import read_only
from ftq.shared.errors import NotFound
from ftq.shared.jobs import service
from ftq.shared.jobs.schemas import (
    Checkpoint,
    Job,
    JobCreate,
    JobEvent,
    JobRetry,
    JobStatus,
    MetricPoint,
    check_provider_settings,
)
from ftq.shared.models import JobRecord, Team
from ftq.shared.pagination import Page
from ftq.shared.settings import get_settings

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Job)
async def create_job(
    data: JobCreate,
    session: SessionDep,
    team: CreatingTeamDep,
    idempotency: CreatingIdempotencyDep,
) -> Response:
    """Queue a fine-tuning job; it starts once its datasets are valid."""
    # The route CI pipelines call in bursts: a cached key (the team's limits are read again under
    # the admission lock), and the whole create, its commit and its JSON on one pool thread.
    return await run_in_threadpool(_create, session, team, idempotency, data)


def _create(session: Session, team: Team, idempotency: Idempotency, data: JobCreate) -> Response:
    # On the thread too: a local provider's check may look for CUDA (importing torch once).
    check_provider_settings(data, data.provider or get_settings().provider)
    if (replay := idempotency.begin(session, data)) is not None:
        return replay
    job = service.to_schema(session, service.create(session, team, data))
    idempotency.save(session, status.HTTP_201_CREATED, job)
    commit(session)
    body = job.model_dump_json(by_alias=True)
    return Response(body, status_code=status.HTTP_201_CREATED, media_type="application/json")


@router.get("", response_model=Page[Job])
def list_jobs(
    session: SessionDep,
    team: TeamDep,
    limit: LimitQuery = 20,
    after: AfterQuery = None,
    status: JobStatus | None = None,
) -> Page[Job]:
    """The team's jobs, newest first, optionally by status."""
    rows, more = service.list_page(session, team, status=status, limit=limit, after=after)
    return Page(data=service.to_schemas(session, rows), has_more=more)


@router.get("/{job_id}", response_model=Job)
async def read_job(job_id: str, session: ReadSessionDep, team: CachedTeamDep) -> Response:
    """One job."""
    # The route clients poll: a cached key and, on Postgres, one query on the event loop; a job
    # whose view needs more (its queue place, its eval) takes one thread-pool hop for it.
    pool = loop_reads.pool_for(session)
    if pool is None:
        job = await run_in_threadpool(_job_view, session, team, job_id)
    else:
        row = await loop_reads.job_row(pool, team.id, job_id)
        if row is None:
            raise NotFound(f"no job {job_id}", param="id")
        view = service.view_of_row(row)
        job = view if view is not None else await run_in_threadpool(_row_view, session, row)
    return Response(job.model_dump_json(by_alias=True), media_type="application/json")


def _job_view(session: Session, team: Team, job_id: str) -> Job:
    return service.view(read_only(session), team, job_id)


def _row_view(session: Session, row: JobRecord) -> Job:
    return service.to_schema(read_only(session), row)


@router.post("/{job_id}/cancel", response_model=Job)
def cancel_job(job_id: str, session: SessionDep, team: TeamDep) -> Job:
    """Cancel a job that has not finished (also at the provider)."""
    job = service.cancel(session, team, job_id)
    commit(session)
    return service.to_schema(session, job)


@router.post("/{job_id}/pause", status_code=status.HTTP_202_ACCEPTED, response_model=Job)
def pause_job(job_id: str, session: SessionDep, team: TeamDep) -> Job:
    """Pause a running job at its provider (202: the worker asks the provider)."""
    job = service.request_control(session, team, job_id, "pause")
    commit(session)
    return service.to_schema(session, job)


@router.post("/{job_id}/resume", status_code=status.HTTP_202_ACCEPTED, response_model=Job)
def resume_job(job_id: str, session: SessionDep, team: TeamDep) -> Job:
    """Resume a paused job at its provider (202: the worker asks the provider)."""
    job = service.request_control(session, team, job_id, "resume")
    commit(session)
    return service.to_schema(session, job)


@router.post("/{job_id}/retry", status_code=status.HTTP_201_CREATED, response_model=Job)
def retry_job(
    job_id: str,
    session: SessionDep,
    team: TeamDep,
    idempotency: IdempotencyDep,
    data: Annotated[JobRetry | None, Body()] = None,
) -> Job | Response:
    """A new job on a finished job's data with the diagnosis's suggestion (or the body's
    hyperparameters); 409 while the job has not finished."""
    data = data or JobRetry()
    if (replay := idempotency.begin(session, data)) is not None:
        return replay
    job = service.to_schema(session, service.retry(session, team, job_id, data))
    idempotency.save(session, status.HTTP_201_CREATED, job)
    commit(session)
    return job


@router.get("/{job_id}/events", response_model=Page[JobEvent])
def list_events(
    job_id: str,
    session: SessionDep,
    team: TeamDep,
    limit: LimitQuery = 100,
    after: Annotated[int | None, Query()] = None,
) -> Page[JobEvent]:
    """ftq's and the provider's events, oldest first."""
    rows, more = service.events_page(session, team, job_id, limit=limit, after=after)
    return Page(data=[JobEvent.model_validate(r) for r in rows], has_more=more)


@router.get("/{job_id}/metrics", response_model=Page[MetricPoint])
def list_metrics(job_id: str, session: SessionDep, team: TeamDep) -> Page[MetricPoint]:
    """Every training step's losses and token accuracies, in step order."""
    return Page(data=service.metrics(session, team, job_id), has_more=False)


@router.get("/{job_id}/checkpoints", response_model=Page[Checkpoint])
def list_checkpoints(job_id: str, session: SessionDep, team: TeamDep) -> Page[Checkpoint]:
    """The provider's checkpoints of a job, in step order; each names a usable model."""
    return Page(data=service.checkpoints(session, team, job_id), has_more=False)


@router.get("/{job_id}/result-file", response_class=StreamingResponse)
def download_result_file(job_id: str, session: SessionDep, team: TeamDep) -> StreamingResponse:
    """The provider's result file (per-step metrics CSV), kept when the job succeeded."""
    job, key = service.result_blob(session, team, job_id)
    return blob_download(key, f"{job.id}-results.csv", "text/csv")
