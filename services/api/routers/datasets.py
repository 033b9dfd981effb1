"""Datasets: streamed upload, list, read with report, download, delete."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ftq.services.api.deps import AfterQuery, LimitQuery, SessionDep, TeamDep
from ftq.services.api.downloads import blob_download
from ftq.services.api.idempotency import IdempotencyDep
from ftq.services.api.uow import commit
from ftq.services.api.uploads import ParsedUpload, receive_upload
from ftq.shared.datasets import service
from ftq.shared.datasets.schemas import (
    Dataset,
    DatasetConvert,
    DatasetCreate,
    DatasetSplit,
    DatasetSplitResult,
)
from ftq.shared.errors import AppError, Unprocessable
from ftq.shared.pagination import Page
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


def _fields(raw: dict[str, str]) -> DatasetCreate:
    try:
        return DatasetCreate.model_validate({k: v for k, v in raw.items() if v != ""})
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise Unprocessable(f"{param}: {first['msg']}", param=param) from exc


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Dataset)
async def upload_dataset(
    request: Request,
    response: Response,
    session: SessionDep,
    team: TeamDep,
    idempotency: IdempotencyDep,
) -> Dataset | Response:
    """Upload a JSONL file (multipart field `file`); the same bytes return the existing one."""
    store = get_blob_store()
    upload = await receive_upload(
        request,
        store,
        f"datasets/{team.id}",
        get_settings().max_upload_bytes,
        frozenset(DatasetCreate.model_fields),
    )
    try:
        fields = _fields(upload.fields)
        replay = await run_in_threadpool(
            idempotency.begin, session, _upload_fingerprint(upload.blob.sha256, upload)
        )
    except AppError:
        store.delete(upload.blob.key)
        raise
    if replay is not None:
        store.delete(upload.blob.key)
        return replay
    dataset, created = await run_in_threadpool(
        service.create, session, team, upload.blob, upload.filename, fields
    )
    result = Dataset.model_validate(dataset)
    if not created:
        response.status_code = status.HTTP_200_OK
    await run_in_threadpool(idempotency.save, session, response.status_code or 201, result)
    await run_in_threadpool(commit, session)
    return result


def _upload_fingerprint(sha256: str, upload: ParsedUpload) -> bytes:
    """The uploaded bytes' digest with the form fields and file name (what a replay must match)."""
    fields = json.dumps({"filename": upload.filename, **upload.fields}, sort_keys=True)
    return f"{sha256}\n{fields}".encode()


@router.get("", response_model=Page[Dataset])
def list_datasets(
    session: SessionDep, team: TeamDep, limit: LimitQuery = 20, after: AfterQuery = None
) -> Page[Dataset]:
    """The team's datasets, newest first."""
    rows, more = service.list_page(session, team, limit=limit, after=after)
    return Page(
        data=[Dataset.model_validate(r).model_copy(update={"report": None}) for r in rows],
        has_more=more,
    )


@router.get("/{dataset_id}", response_model=Dataset)
def read_dataset(dataset_id: str, session: SessionDep, team: TeamDep) -> Dataset:
    """One dataset with its validation report."""
    return Dataset.model_validate(service.get(session, team, dataset_id))


@router.get("/{dataset_id}/content")
def download_dataset(dataset_id: str, session: SessionDep, team: TeamDep) -> StreamingResponse:
    """The file as uploaded."""
    dataset = service.get(session, team, dataset_id)
    return blob_download(dataset.blob_key, dataset.name, "application/jsonl")


@router.post("/{dataset_id}/convert", status_code=status.HTTP_201_CREATED, response_model=Dataset)
def convert_dataset(
    dataset_id: str,
    body: DatasetConvert,
    response: Response,
    session: SessionDep,
    team: TeamDep,
    idempotency: IdempotencyDep,
) -> Dataset | Response:
    """Turn OpenAI evals records (`input`, `ideal`) into chat fine-tuning examples."""
    if (replay := idempotency.begin(session, body)) is not None:
        return replay
    dataset, created = service.convert_to_chat(session, team, dataset_id, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    view = Dataset.model_validate(dataset)
    idempotency.save(session, response.status_code, view)
    commit(session)
    return view


@router.post(
    "/{dataset_id}/split", status_code=status.HTTP_201_CREATED, response_model=DatasetSplitResult
)
def split_dataset(
    dataset_id: str,
    body: DatasetSplit,
    session: SessionDep,
    team: TeamDep,
    idempotency: IdempotencyDep,
) -> DatasetSplitResult | Response:
    """Cut a seeded validation split; both halves are new datasets, validated like uploads."""
    if (replay := idempotency.begin(session, body)) is not None:
        return replay
    train, valid = service.split(session, team, dataset_id, body)
    result = DatasetSplitResult(
        train=Dataset.model_validate(train), validation=Dataset.model_validate(valid)
    )
    idempotency.save(session, status.HTTP_201_CREATED, result)
    commit(session)
    return result


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: str, session: SessionDep, team: TeamDep) -> None:
    """Delete a dataset no job refers to."""
    service.delete(session, team, dataset_id)
    commit(session)
