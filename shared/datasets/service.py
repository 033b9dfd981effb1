"""Datasets: accept an upload, validate it in the worker, serve and delete it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.orm import Session

from ftq.shared.datasets import convert, hooks, repository
from ftq.shared.datasets.jsonl import ensure_json_lines
from ftq.shared.datasets.schemas import DatasetConvert, DatasetCreate, DatasetSplit
from ftq.shared.errors import AppError, Conflict, NotFound, Unprocessable
from ftq.shared.ids import new_id
from ftq.shared.models import Dataset, Team
from ftq.shared.observability.metrics import record_validation
from ftq.shared.outbox import enqueue
from ftq.shared.storage import StoredBlob, get_blob_store
from ftq.shared.timeutil import utcnow
from ftq.shared.webhooks import service as webhooks

if TYPE_CHECKING:
    from ftq.shared.datasets.validation.report import ValidationReport

log = logging.getLogger(__name__)

MINIMUM_COUNT_ERROR = "too_few_examples"  # the validator's 10-example minimum (training files)


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


def usable(
    session: Session,
    team: Team,
    dataset_id: str,
    param: str,
    *,
    small_ok: bool,
    purpose: str | None = None,
    ready: bool = False,
) -> Dataset:
    """A team's dataset fit for its role (404, 422; 409 while validating when `ready`)."""
    dataset = repository.get_for_team(session, team.id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}", param=param)
    if purpose is not None and dataset.purpose != purpose:
        raise Unprocessable(
            f"dataset {dataset_id} has purpose {dataset.purpose!r}, not {purpose!r}", param=param
        )
    if ready and dataset.status == "validating":
        raise Conflict(
            f"dataset {dataset_id} is still being validated; try again when it is ready",
            param=param,
            code="dataset_not_ready",
        )
    if not fit_for(dataset, small_ok=small_ok):
        raise Unprocessable(
            f"dataset {dataset_id} failed validation; see its report at "
            f"GET /v1/datasets/{dataset_id}",
            param=param,
            code="invalid_dataset",
        )
    return dataset


def fit_for(dataset: Dataset, *, small_ok: bool) -> bool:
    """Not invalid, or invalid only for too few examples where few will do (validation, evals)."""
    if dataset.status != "invalid":
        return True
    by_code = ((dataset.report or {}).get("errors") or {}).get("by_code") or {}
    return small_ok and set(by_code) == {MINIMUM_COUNT_ERROR} and bool(dataset.n_examples)


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
    from ftq.shared.datasets.validation import validate_file

    dataset = repository.lock(session, dataset_id)
    if dataset is None or dataset.status != "validating":
        return dataset
    path: Path = get_blob_store().path(dataset.blob_key)
    started = time.perf_counter()
    report = validate_file(path, model=dataset.model, purpose=dataset.purpose)
    seconds = time.perf_counter() - started
    record_validation(dataset.bytes, seconds, "ready" if report.ok else "invalid")
    _settle(session, dataset, report)
    return dataset


def fail_validation(session: Session, dataset_id: str, code: str, message: str) -> Dataset | None:
    """Make a dataset that could not be validated invalid, with one file-wide error `code`."""
    from ftq.shared.datasets.validation.core import resolve_model
    from ftq.shared.datasets.validation.report import Finding, Findings, Purpose, ValidationReport

    dataset = repository.lock(session, dataset_id)
    if dataset is None or dataset.status != "validating":
        return dataset
    try:
        info = resolve_model(dataset.model)
        model, encoding = info.name, info.encoding
    except AppError:  # the report still parses; the model was never checked
        model, encoding = dataset.model or "", ""
    finding = Finding(line=None, code=code, message=message)
    errors = Findings(total=1, by_code={code: 1}, items=[finding])
    report = ValidationReport(
        ok=False,
        purpose=cast(Purpose, dataset.purpose),
        model=model,
        encoding=encoding,
        n_bytes=dataset.bytes,
        errors=errors,
    )
    _settle(session, dataset, report)
    return dataset


def _settle(session: Session, dataset: Dataset, report: ValidationReport) -> None:
    """Store a report, tell the team (dataset.ready / dataset.invalid) and the waiting jobs."""
    dataset.report = report.model_dump(mode="json")
    dataset.n_examples = report.n_examples
    dataset.status = "ready" if report.ok else "invalid"
    dataset.validated_at = utcnow()
    session.flush()
    webhooks.emit(session, dataset.team_id, f"dataset.{dataset.status}", dataset_payload(dataset))
    hooks.validated(session, dataset)


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


def validation_leak(training: Dataset, validation: Dataset) -> str | None:
    """A warning naming the validation examples that repeat training ones (None when none).

    Re-reads both blobs with a quality-only pass (no tokenizer); a leaked validation set makes
    a job's validation loss look better than the model is, so the job only gets a warning.
    """
    from ftq.shared.datasets.validation.core import overlap_files

    if training.id == validation.id:
        return None
    store = get_blob_store()
    try:
        overlap = overlap_files(store.path(training.blob_key), store.path(validation.blob_key))
    except (OSError, ValueError) as exc:
        log.warning("overlap check of %s and %s failed: %s", training.id, validation.id, exc)
        return None
    if not overlap.leaked:
        return None
    parts = []
    for kind, check in (("exactly", overlap.exact), ("nearly", overlap.near)):
        if check.count:
            pairs = ", ".join(
                f"{line} (training line {match})"
                for line, match in zip(check.lines, check.matches, strict=True)
            )
            more = f" and {check.count - len(check.lines)} more" if check.truncated else ""
            parts.append(f"{check.count} {kind} at validation lines {pairs}{more}")
    n = overlap.exact.count + overlap.near.count
    return (
        f"Validation dataset {validation.id} repeats training dataset {training.id}: {n} of its "
        f"{overlap.n_validation_examples} examples ({'; '.join(parts)}); its validation loss "
        "will look better than the model is"
    )
