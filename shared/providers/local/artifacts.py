"""A local job's downloadable artifacts: the adapter, its config, tokenizer and chat template."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from shared.errors import NotFound
from shared.jobs import service as jobs
from shared.models import Team
from shared.providers.local import repository
from shared.storage import get_blob_store


@dataclass(frozen=True)
class Artifact:
    """One stored file."""

    name: str
    bytes: int
    path: Path


def artifacts(session: Session, team: Team, job_id: str) -> list[Artifact]:
    """A team's job's artifacts, by name (404 when the job has none yet)."""
    job = jobs.get(session, team, job_id)
    run = repository.get(session, job.provider_job_id) if job.provider_job_id else None
    if job.provider != "local" or run is None or not run.artifact_prefix:
        raise NotFound(
            f"job {job_id} has no artifacts (only succeeded local jobs have)", param="id"
        )
    folder = get_blob_store().path(run.artifact_prefix)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return [Artifact(p.name, p.stat().st_size, p) for p in files]


def artifact(session: Session, team: Team, job_id: str, name: str) -> Artifact:
    """One artifact by file name (404 when unknown)."""
    for item in artifacts(session, team, job_id):
        if item.name == name:
            return item
    raise NotFound(f"job {job_id} has no artifact {name!r}", param="name")
