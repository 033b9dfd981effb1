"""`/v1/files` routes of the emulator (a test double of OpenAI's Files API)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import FormData, UploadFile

from ftq.services.emulator.errors import bad_request, invalid_type, missing
from ftq.services.emulator.store import EmulatorState

PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
MAX_BYTES = 512 * 1024 * 1024


def files_router(state: EmulatorState) -> APIRouter:
    """Upload, list, read, download and delete files."""
    router = APIRouter(prefix="/v1/files")

    @router.post("")
    async def create_file(request: Request) -> dict[str, Any]:
        """Multipart upload: `purpose` and `file` (plus optional `expires_after[...]`)."""
        form = await request.form()
        purpose, upload = _purpose(form), form.get("file")
        if not isinstance(upload, UploadFile):
            raise missing("file")
        filename = upload.filename or "upload"
        if purpose == "fine-tune" and not filename.endswith(".jsonl"):
            raise bad_request("Invalid file format for Fine-Tuning API. Must be .jsonl", "file")
        content = await upload.read()
        if len(content) > MAX_BYTES:
            raise bad_request("File is too large: the limit is 512 MB.", "file", "file_too_large")
        return state.add_file(filename, purpose, content, _expires_after(form))

    @router.get("")
    def list_files(
        purpose: str | None = None,
        limit: int = Query(10_000, ge=1, le=10_000),
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
    ) -> dict[str, Any]:
        """Files, newest first by default."""
        return state.list_files(purpose, order, after, limit)

    @router.get("/{file_id}")
    def retrieve_file(file_id: str) -> dict[str, Any]:
        """One file object."""
        return state.file(file_id).to_dict()

    @router.delete("/{file_id}")
    def delete_file(file_id: str) -> dict[str, Any]:
        """Delete a file."""
        return state.delete_file(file_id)

    @router.get("/{file_id}/content")
    def file_content(file_id: str) -> Response:
        """The stored bytes (result files are base64 text, as OpenAI serves them)."""
        return Response(state.file(file_id).content, media_type="application/octet-stream")

    return router


def _purpose(form: FormData) -> str:
    """The `purpose` field, one of PURPOSES."""
    purpose = form.get("purpose")
    if purpose is None:
        raise missing("purpose")
    if purpose not in PURPOSES:
        raise bad_request(
            f"'{purpose}' is not one of {PURPOSES} - 'purpose'", "purpose", "invalid_value"
        )
    return str(purpose)


def _expires_after(form: FormData) -> int | None:
    """`expires_after[anchor]=created_at` with `expires_after[seconds]` in 3600..2592000."""
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise bad_request(
            "Invalid 'expires_after.anchor': expected 'created_at'.", "expires_after.anchor"
        )
    if not isinstance(seconds, str) or not seconds.isdigit():
        raise invalid_type("expires_after.seconds", "an integer", seconds)
    if not 3600 <= int(seconds) <= 2_592_000:
        raise bad_request(
            "Invalid 'expires_after.seconds': expected a value between 3600 and 2592000.",
            "expires_after.seconds",
            "invalid_value",
        )
    return int(seconds)
