"""OpenAI's `/v1/files` over ftq (the SDK's `client.files`)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.services.api.downloads import blob_download
from ftq.services.api.idempotency import IdempotencyDep
from ftq.services.api.uow import commit
from ftq.services.api.uploads import ParsedUpload, receive_upload
from ftq.shared.compat import files as service
from ftq.shared.errors import AppError
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store

router = APIRouter(prefix="/v1/files", tags=["openai-compatible"])

FORM_FIELDS = frozenset({"purpose"})
FilesLimit = Annotated[int, Query(ge=1, le=10_000)]


@router.post("", response_model=None)
async def create_file(
    request: Request, session: SessionDep, team: TeamDep, idempotency: IdempotencyDep
) -> dict[str, Any] | Response:
    """Multipart `purpose` and `file`: the native streamed upload, answered as OpenAI's file."""
    store = get_blob_store()
    upload = await receive_upload(
        request, store, f"datasets/{team.id}", get_settings().max_upload_bytes, FORM_FIELDS
    )
    try:
        purpose = upload.fields.get("purpose")
        service.ftq_purpose(purpose)
        replay = await run_in_threadpool(idempotency.begin, session, _fingerprint(upload))
    except AppError:
        store.delete(upload.blob.key)
        raise
    if replay is not None:
        store.delete(upload.blob.key)
        return replay
    dataset = await run_in_threadpool(
        service.create, session, team, upload.blob, upload.filename, str(purpose)
    )
    result = service.file_object(dataset)
    await run_in_threadpool(idempotency.save, session, 200, result)
    await run_in_threadpool(commit, session)
    return result


def _fingerprint(upload: ParsedUpload) -> bytes:
    """The bytes' digest with the form fields and file name (what a replay must match)."""
    fields = json.dumps({"filename": upload.filename, **upload.fields}, sort_keys=True)
    return f"{upload.blob.sha256}\n{fields}".encode()


@router.get("", response_model=None)
def list_files(
    session: SessionDep,
    team: TeamDep,
    purpose: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    limit: FilesLimit = 10_000,
) -> dict[str, Any]:
    """The team's files, newest first unless `order=asc` (`after` = the last id seen)."""
    rows, more = service.list_page(
        session, team, purpose=purpose, order=order, after=after, limit=limit
    )
    data = [service.file_object(r) for r in rows]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}


@router.get("/{file_id}", response_model=None)
def retrieve_file(file_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """One file; `status` follows ftq's validation."""
    return service.file_object(service.get(session, team, file_id))


@router.delete("/{file_id}", response_model=None)
def delete_file(file_id: str, session: SessionDep, team: TeamDep) -> dict[str, Any]:
    """Delete a file no job refers to."""
    deleted = service.delete(session, team, file_id)
    commit(session)
    return deleted


@router.get("/{file_id}/content")
def file_content(file_id: str, session: SessionDep, team: TeamDep) -> StreamingResponse:
    """The file's bytes as uploaded."""
    dataset = service.get(session, team, file_id)
    return blob_download(dataset.blob_key, dataset.name, "application/octet-stream")
