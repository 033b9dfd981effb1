"""Datasets: accept an upload, validate it in the worker, serve and delete it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from shared.datasets import convert, repository
from shared.datasets.jsonl import ensure_json_lines
from shared.datasets.schemas import DatasetConvert, DatasetCreate, DatasetSplit
from shared.errors import Conflict, NotFound, Unprocessable
from shared.ids import new_id
from shared.models import Dataset, Team
from shared.observability.metrics import record_validation
from shared.outbox import enqueue
from shared.storage import StoredBlob, get_blob_store
from shared.timeutil import utcnow
from shared.webhooks import service as webhooks

log = logging.getLogger(__name__)


def create(
    session: Session, team: Team, blob: StoredBlob, filename: str, fields: DatasetCreate
) -> tuple[Dataset, bool]:
    """Register an uploaded blob; the same bytes again return the existing dataset."""
    store = get_blob_store()
    try:
        n_lines = ensure_json_lines(store.path(blob.key))
    except Exception:
        store.delete(blob.key)
        raise
    existing = repository.find_duplicate(session, team.id, blob.sha256, fields.purpose)
    if existing is not None:
        store.delete(blob.key)
        return existing, False
    dataset = Dataset(
        id=new_id("ds"),
        team_id=team.id,
        name=fields.name or filename or "dataset.jsonl",
        purpose=fields.purpose,
        model=fields.model,
        bytes=blob.size,
        sha256=blob.sha256,
        blob_key=blob.key,
        status="validating",
        n_examples=n_lines,
        provider_files={},
    )
    repository.add(session, dataset)
    enqueue(session, "datasets.validate", dataset.id)
    return dataset, True


def get(session: Session, team: Team, dataset_id: str) -> Dataset:
    """A team's dataset, or 404."""
    dataset = repository.get_for_team(session, team.id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}", param="id")
    return dataset


def list_page(
    session: Session, team: Team, *, limit: int, after: str | None
) -> tuple[list[Dataset], bool]:
    """A page of the team's datasets."""
    return repository.list_for_team(session, team.id, limit=limit, after=after)


def delete(session: Session, team: Team, dataset_id: str) -> None:
    """Delete a dataset that no job refers to, with its file."""
    dataset = get(session, team, dataset_id)
    jobs = repository.jobs_using(session, dataset.id)
    if jobs:
        raise Conflict(
            f"dataset is used by job {jobs[0].id}; datasets of jobs are kept for the record",
            param="id",
        )
    blob_key = dataset.blob_key
    repository.delete(session, dataset)
    get_blob_store().delete(blob_key)


def convert_to_chat(
    session: Session, team: Team, dataset_id: str, request: DatasetConvert
) -> tuple[Dataset, bool]:
    """A new fine-tune dataset made of a dataset's evals records turned into chat examples."""
    source = get(session, team, dataset_id)
    store = get_blob_store()
    out = store.scratch_path()
    try:
        convert.evals_to_chat(store.path(source.blob_key), out)
    except convert.ConversionError as exc:
        line, reason = exc.problems[0]
        raise Unprocessable(
            f"{exc.total} line(s) cannot be converted; first at line {line}: {reason}",
            param=f"line {line}",
        ) from exc
    name = request.name or f"{Path(source.name).stem}-chat.jsonl"
    return _register_derived(session, team, source, out, name)


def split(
    session: Session, team: Team, dataset_id: str, request: DatasetSplit
) -> tuple[Dataset, Dataset]:
    """Two new datasets: the training examples left and a seeded validation share."""
    source = get(session, team, dataset_id)
    store = get_blob_store()
    train_path, valid_path = store.scratch_path(), store.scratch_path()
    try:
        convert.split(
            store.path(source.blob_key), train_path, valid_path, request.fraction, request.seed
        )
    except ValueError as exc:
        raise Unprocessable(str(exc), param="fraction") from exc
    stem = Path(source.name).stem
    train, _ = _register_derived(session, team, source, train_path, f"{stem}-train.jsonl")
    valid, _ = _register_derived(session, team, source, valid_path, f"{stem}-valid.jsonl")
    return train, valid


def _register_derived(
    session: Session, team: Team, source: Dataset, path: Path, name: str
) -> tuple[Dataset, bool]:
    """Store a file made from another dataset and register it like an upload."""
    blob = get_blob_store().adopt(f"datasets/{team.id}", path)
    fields = DatasetCreate(name=name, purpose="fine-tune", model=source.model)
    return create(session, team, blob, name, fields)


def run_validation(session: Session, dataset_id: str) -> Dataset | None:
    """Validate a dataset's file, store the report and release or fail the jobs waiting on it."""
    from shared.datasets.validation import validate_file
    from shared.jobs import service as jobs

    dataset = repository.lock(session, dataset_id)
    if dataset is None or dataset.status != "validating":
        return dataset
    path: Path = get_blob_store().path(dataset.blob_key)
    started = time.perf_counter()
    report = validate_file(path, model=dataset.model, purpose=dataset.purpose)
    seconds = time.perf_counter() - started
    record_validation(dataset.bytes, seconds, "ready" if report.ok else "invalid")
    dataset.report = report.model_dump(mode="json")
    dataset.n_examples = report.n_examples
    dataset.status = "ready" if report.ok else "invalid"
    dataset.validated_at = utcnow()
    session.flush()
    webhooks.emit(session, dataset.team_id, f"dataset.{dataset.status}", dataset_payload(dataset))
    jobs.on_dataset_validated(session, dataset)
    return dataset


def dataset_payload(dataset: Dataset) -> dict[str, Any]:
    """The thin webhook payload of a dataset event."""
    report = dataset.report or {}
    errors = report.get("errors") or {}
    return {
        "id": dataset.id,
        "object": "dataset",
        "name": dataset.name,
        "status": dataset.status,
        "n_examples": dataset.n_examples,
        "error_count": errors.get("total") if isinstance(errors, dict) else None,
    }
