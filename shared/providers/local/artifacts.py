"""A local job's downloadable artifacts: the adapter, its config, tokenizer and chat template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from ftq.shared.errors import NotFound
from ftq.shared.models import Job
from ftq.shared.providers.local import repository
from ftq.shared.storage import get_blob_store


@dataclass(frozen=True)
class Artifact:
    """One stored file."""

    name: str
    bytes: int
    path: Path


def artifacts(session: Session, job: Job) -> list[Artifact]:
    """A job's artifacts, by name (404 when the job has none yet)."""
    run = repository.get(session, job.provider_job_id) if job.provider_job_id else None
    if job.provider != "local" or run is None or not run.artifact_prefix:
        raise NotFound(
            f"job {job.id} has no artifacts (only succeeded local jobs have)", param="id"
        )
    folder = get_blob_store().path(run.artifact_prefix)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return [Artifact(p.name, p.stat().st_size, p) for p in files]


def artifact(session: Session, job: Job, name: str) -> Artifact:
    """One artifact by file name (404 when unknown)."""
    for item in artifacts(session, job):
        if item.name == name:
            return item
    raise NotFound(f"job {job.id} has no artifact {name!r}", param="name")
