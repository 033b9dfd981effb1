"""Downloadable artifacts of local fine-tuning jobs: list, download file by file, and the adapter
merged into its base on request (`POST .../artifacts/merge`, then `.../artifacts/merged/{name}`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.shared.jobs import service as jobs
from ftq.shared.providers.local import artifacts as service
from ftq.shared.providers.local import merge

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}/artifacts")
def list_artifacts(job_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """The adapter (safetensors), adapter config, tokenizer and chat template of a local job."""
    items = service.artifacts(session, jobs.get(session, team, job_id))
    return _listed(items, f"/v1/jobs/{job_id}/artifacts")


@router.post("/{job_id}/artifacts/merge")
def merge_artifacts(job_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Full weights (`model.safetensors`, config, tokenizer): merged once, then the stored copy."""
    items = merge.merge(session, jobs.get(session, team, job_id))
    return _listed(items, f"/v1/jobs/{job_id}/artifacts/merged")


@router.get("/{job_id}/artifacts/merged/{name}")
def download_merged(job_id: str, name: str, session: SessionDep, team: TeamDep) -> FileResponse:
    """One file of the merged model."""
    item = merge.merged_artifact(session, jobs.get(session, team, job_id), name)
    return FileResponse(item.path, filename=item.name, media_type="application/octet-stream")


@router.get("/{job_id}/artifacts/{name}")
def download_artifact(job_id: str, name: str, session: SessionDep, team: TeamDep) -> FileResponse:
    """One artifact's bytes."""
    item = service.artifact(session, jobs.get(session, team, job_id), name)
    return FileResponse(item.path, filename=item.name, media_type="application/octet-stream")


def _listed(items: list[service.Artifact], base: str) -> dict[str, Any]:
    data = [
        {"object": "artifact", "name": item.name, "bytes": item.bytes, "url": f"{base}/{item.name}"}
        for item in items
    ]
    return {"object": "list", "data": data, "has_more": False}
