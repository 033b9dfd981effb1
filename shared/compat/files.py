"""`/v1/files`: OpenAI's file objects over ftq's datasets, one to one (`ds_X` is `file-X`).

An uploaded file is an ordinary ftq dataset: the same streamed upload, SHA-256 dedup and worker
validation. OpenAI's deprecated `status` carries ftq's validation (`uploaded` while validating,
`processed` when ready, `error` when invalid) and `status_details` the first findings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ftq.shared.compat import findings, ids
from ftq.shared.datasets import repository as datasets_repo
from ftq.shared.datasets import service as datasets
from ftq.shared.datasets.schemas import DatasetCreate, DatasetPurpose
from ftq.shared.errors import BadRequest, Conflict, NotFound
from ftq.shared.models import Dataset, Team
from ftq.shared.storage import StoredBlob
from ftq.shared.timeutil import as_utc

# OpenAI's purpose word -> ftq's dataset purpose; the other OpenAI purposes have no ftq use.
PURPOSES: dict[str, DatasetPurpose] = {"fine-tune": "fine-tune", "evals": "eval"}
OPENAI_PURPOSE: dict[str, str] = {ftq: openai for openai, ftq in PURPOSES.items()}
STATUSES = {"validating": "uploaded", "ready": "processed", "invalid": "error"}
NO_RETRY = {"x-should-retry": "false"}  # the SDK retries 409s unless told not to


def ftq_purpose(purpose: str | None) -> DatasetPurpose:
    """ftq's purpose for OpenAI's, or a 400 naming `purpose` and what ftq accepts."""
    if purpose is None:
        raise BadRequest("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in PURPOSES:
        raise BadRequest(
            f"purpose {purpose!r} is not supported by ftq: use 'fine-tune' (training and "
            "validation files) or 'evals' (eval data sets)",
            param="purpose",
            code="invalid_value",
        )
    return PURPOSES[purpose]


def create(session: Session, team: Team, blob: StoredBlob, filename: str, purpose: str) -> Dataset:
    """Register an uploaded blob as a dataset (the same bytes again: the existing one)."""
    fields = DatasetCreate(purpose=ftq_purpose(purpose))
    dataset, _ = datasets.create(session, team, blob, filename, fields)
    return dataset


def get(session: Session, team: Team, file: str) -> Dataset:
    """A team's dataset by its `file-` id, or OpenAI's 404."""
    dataset = datasets_repo.get_for_team(session, team.id, ids.dataset_id(file))
    if dataset is None:
        raise NotFound(f"No such File object: {file}", param="file_id")
    return dataset


def list_page(
    session: Session,
    team: Team,
    *,
    purpose: str | None,
    order: str,
    after: str | None,
    limit: int,
) -> tuple[list[Dataset], bool]:
    """A page of the team's files (`desc`: newest first); `after` is a `file-` id."""
    if purpose is not None and purpose not in PURPOSES:
        return [], False
    cursor = ids.dataset_id(after, "after") if after else None
    return datasets_repo.list_by_purpose(
        session,
        team.id,
        purpose=PURPOSES[purpose] if purpose else None,
        limit=limit,
        after=cursor,
        newest_first=order == "desc",
    )


def delete(session: Session, team: Team, file: str) -> dict[str, Any]:
    """Delete a file no job refers to (409 naming the job otherwise)."""
    dataset = get(session, team, file)
    jobs = datasets_repo.jobs_using(session, dataset.id)
    if jobs:
        raise Conflict(
            f"File {file} is used by fine-tuning job {ids.job_id(jobs[0].id)}: the files of "
            "jobs are kept for the record, so it cannot be deleted",
            param="file_id",
            code="file_in_use",
            headers=NO_RETRY,
        )
    datasets.delete(session, team, dataset.id)
    return {"id": file, "object": "file", "deleted": True}


def file_object(dataset: Dataset) -> dict[str, Any]:
    """OpenAI's `file` object of a dataset, with ftq's id and validation status."""
    # Null `expires_at` (ftq keeps files) and `status_details` are left out: OpenAI's description
    # types them as integer and string, and the SDK reads the missing ones as None.
    created = as_utc(dataset.created_at) or dataset.created_at
    body: dict[str, Any] = {
        "id": ids.file_id(dataset.id),
        "object": "file",
        "bytes": dataset.bytes,
        "created_at": int(created.timestamp()),
        "filename": dataset.name,
        "purpose": OPENAI_PURPOSE.get(dataset.purpose, dataset.purpose),
        "status": STATUSES.get(dataset.status, "uploaded"),
        # ftq's additions (the SDK keeps unknown fields).
        "ftq_dataset_id": dataset.id,
        "validation": dataset.status,
    }
    if dataset.status == "invalid":
        body["status_details"] = status_details(dataset)
    return body


def status_details(dataset: Dataset) -> str:
    """One line: the first findings of an invalid file and where its full report is."""
    return f"ftq's validation failed: {findings.summary(dataset)}"
