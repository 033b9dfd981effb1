"""Downloadable artifacts of local fine-tuning jobs: list, then download file by file."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.shared.jobs import service as jobs
from ftq.shared.providers.local import artifacts as service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}/artifacts")
def list_artifacts(job_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """The adapter (safetensors), adapter config, tokenizer and chat template of a local job."""
    items = service.artifacts(session, jobs.get(session, team, job_id))
    data = [
        {
            "object": "artifact",
            "name": item.name,
            "bytes": item.bytes,
            "url": f"/v1/jobs/{job_id}/artifacts/{item.name}",
        }
        for item in items
    ]
    return {"object": "list", "data": data, "has_more": False}


@router.get("/{job_id}/artifacts/{name}")
def download_artifact(job_id: str, name: str, session: SessionDep, team: TeamDep) -> FileResponse:
    """One artifact's bytes."""
    item = service.artifact(session, jobs.get(session, team, job_id), name)
    return FileResponse(item.path, filename=item.name, media_type="application/octet-stream")
