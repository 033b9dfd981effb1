"""`/v1/fine_tuning/jobs` routes of the emulator (a test double of OpenAI's fine-tuning API)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from ftq.services.emulator.job_request import parse_create
from ftq.services.emulator.routes.common import json_body
from ftq.services.emulator.store import EmulatorState

METADATA_KEY = re.compile(r"metadata\[(.+)\]")


def jobs_router(state: EmulatorState) -> APIRouter:
    """Create, list, read, cancel, pause and resume jobs; their events and checkpoints."""
    router = APIRouter(prefix="/v1/fine_tuning/jobs")

    @router.post("")
    async def create_job(request: Request) -> dict[str, Any]:
        """Create a job (file analysis runs off the event loop)."""
        state.check_create_allowed()
        spec = parse_create(await json_body(request))
        return await run_in_threadpool(state.create_job, spec)

    @router.get("")
    def list_jobs(
        request: Request, after: str | None = None, limit: int = Query(20, ge=1)
    ) -> dict[str, Any]:
        """Jobs newest first; `metadata[k]=v` filters, `metadata=null` keeps jobs without any."""
        metadata, no_metadata = _metadata_filter(request.query_params)
        return state.list_jobs(after, limit, metadata, no_metadata)

    @router.get("/{job_id}")
    def retrieve_job(job_id: str) -> dict[str, Any]:
        """One job."""
        return state.job(job_id)

    @router.post("/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel a job."""
        return state.cancel(job_id)

    @router.post("/{job_id}/pause")
    def pause_job(job_id: str) -> dict[str, Any]:
        """Pause a running job."""
        return state.pause(job_id)

    @router.post("/{job_id}/resume")
    def resume_job(job_id: str) -> dict[str, Any]:
        """Resume a paused job."""
        return state.resume(job_id)

    @router.get("/{job_id}/events")
    def list_events(
        job_id: str, after: str | None = None, limit: int = Query(20, ge=1)
    ) -> dict[str, Any]:
        """Events newest first."""
        return state.events(job_id, after, limit)

    @router.get("/{job_id}/checkpoints")
    def list_checkpoints(
        job_id: str, after: str | None = None, limit: int = Query(10, ge=1)
    ) -> dict[str, Any]:
        """Checkpoints newest first."""
        return state.checkpoints(job_id, after, limit)

    return router


def _metadata_filter(params: QueryParams) -> tuple[dict[str, str], bool]:
    """(`metadata[k]=v` pairs, whether `metadata=null` was asked)."""
    pairs = {}
    for key, value in params.multi_items():
        match = METADATA_KEY.fullmatch(key)
        if match:
            pairs[match.group(1)] = value
    return pairs, params.get("metadata") == "null"
