"""Together AI's routes in the emulator (a test double), under `/together`.

`/together/v1/*` needs `Authorization: Bearer <any key>` (401 otherwise) and answers Together's
shapes; `/together/_storage/{file_id}` is the signed URL an upload PUTs its bytes to (no key,
as with Together's object store). See README.md "Together AI" for every route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from ftq.services.emulator import chat
from ftq.services.emulator.errors import OpenAIError, invalid_type, missing
from ftq.services.emulator.ids import stable_id
from ftq.services.emulator.routes.common import json_body
from ftq.services.emulator.store import EmulatorState
from ftq.services.emulator.together.paths import PREFIX, STORAGE
from ftq.services.emulator.together.shapes import unauthorized
from ftq.services.emulator.together.state import TogetherState

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
# Together's path templates say `{id}` (so do `only` and `stats.calls`); Python names differ.
FILE_ID = Path(alias="id")
JOB_ID = Path(alias="id")


def require_key(request: Request) -> None:
    """Together refuses requests without a bearer API key."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()


def together_routers(state: EmulatorState) -> list[APIRouter]:
    """Files, fine-tunes, downloads and chat of Together's API, plus the upload storage."""
    together = TogetherState(state)
    api = APIRouter(prefix=PREFIX + "/v1", dependencies=[Depends(require_key)])
    _file_routes(api, together)
    _job_routes(api, together)
    _artifact_routes(api, together)
    _chat_routes(api, together)
    return [api, _storage_router(together)]


def _signature(file_id: str) -> str:
    """The emulated pre-signature of one file's upload URL."""
    return stable_id("", 32, "together-upload", file_id)


def _file_routes(api: APIRouter, together: TogetherState) -> None:
    """`/files`: the signed-URL upload, the direct upload, list, read, content, delete."""

    @api.post("/files", response_model=None)
    async def announce(request: Request) -> Response:
        """The SDK's upload: form fields only; 302 to the signed PUT URL with the file id."""
        form = await request.form()
        file = together.announce_file(
            _field(form, "purpose"),
            _field(form, "file_name"),
            _field(form, "file_type", "jsonl"),
            _optional(form, "checksum"),
        )
        url = request.url_for("together_storage", file_id=file.id)
        location = f"{url}?X-Amz-Signature={_signature(file.id)}"
        return Response(
            status_code=302, headers={"Location": location, "X-Together-File-Id": file.id}
        )

    @api.post("/files/upload")
    async def upload(request: Request) -> dict[str, Any]:
        """Multipart upload with the bytes (`purpose`, `file_name`, `file_type`, `file`)."""
        form = await request.form()
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise missing("file")
        content = await part.read()
        purpose, name = _field(form, "purpose"), _field(form, "file_name")
        file_type = _field(form, "file_type", "jsonl")
        return await run_in_threadpool(together.upload_direct, purpose, name, file_type, content)

    @api.post("/files/{id}/preprocess")
    def preprocess(file_id: str = FILE_ID) -> dict[str, Any]:
        """Check the uploaded bytes (checksum, format) and answer the file."""
        return together.preprocess(file_id)

    @api.get("/files")
    def list_files() -> dict[str, Any]:
        """Every file, newest first."""
        return together.list_files()

    @api.get("/files/{id}")
    def retrieve_file(file_id: str = FILE_ID) -> dict[str, Any]:
        """One file."""
        return together.file(file_id)

    @api.delete("/files/{id}")
    def delete_file(file_id: str = FILE_ID) -> dict[str, Any]:
        """Delete a file."""
        return together.delete_file(file_id)

    @api.get("/files/{id}/content")
    def file_content(file_id: str = FILE_ID) -> Response:
        """The bytes as uploaded."""
        return Response(together.file_content(file_id), media_type="text/plain; charset=utf-8")


def _job_routes(api: APIRouter, together: TogetherState) -> None:
    """`/fine-tunes`: limits, price, create, list, read, cancel, delete, events, checkpoints."""

    @api.get("/fine-tunes/models/limits")
    def model_limits(model_name: str) -> dict[str, Any]:
        """Hyperparameter limits of a base model (or of the base of a job to continue)."""
        return together.limits(model_name)

    @api.get("/fine-tunes/models/supported")
    def supported_models() -> dict[str, Any]:
        """The fine-tunable base models."""
        return together.supported()

    @api.post("/fine-tunes/estimate-price")
    async def estimate_price(request: Request) -> dict[str, Any]:
        """The emulated price of a job."""
        body = await json_body(request)
        return await run_in_threadpool(together.estimate, body)

    @api.post("/fine-tunes")
    async def create_job(request: Request) -> dict[str, Any]:
        """Create a job."""
        body = await json_body(request)
        return await run_in_threadpool(together.create, body)

    @api.get("/fine-tunes")
    def list_jobs() -> dict[str, Any]:
        """Every job, newest first."""
        return together.list_jobs()

    @api.get("/fine-tunes/{id}")
    def retrieve_job(job_id: str = JOB_ID) -> dict[str, Any]:
        """One job with its events."""
        return together.job(job_id)

    @api.delete("/fine-tunes/{id}")
    def delete_job(job_id: str = JOB_ID, force: bool = False) -> dict[str, Any]:
        """Delete a finished job (`force` is accepted and unused, as Together documents)."""
        return together.delete(job_id)

    @api.post("/fine-tunes/{id}/cancel")
    def cancel_job(job_id: str = JOB_ID) -> dict[str, Any]:
        """Request cancellation."""
        return together.cancel(job_id)

    @api.get("/fine-tunes/{id}/events")
    def list_events(job_id: str = JOB_ID) -> dict[str, Any]:
        """A job's events, oldest first."""
        return together.events(job_id)

    @api.get("/fine-tunes/{id}/checkpoints")
    def list_checkpoints(job_id: str = JOB_ID) -> dict[str, Any]:
        """A job's checkpoints, newest first."""
        return together.checkpoints(job_id)


def _artifact_routes(api: APIRouter, together: TogetherState) -> None:
    """Metrics and the model download."""

    @api.get("/fine-tunes/{id}/metrics")
    def list_metrics(
        job_id: str = JOB_ID,
        global_step_from: int | None = None,
        global_step_to: int | None = None,
        logged_at_from: str | None = None,
        logged_at_to: str | None = None,
        resolution: int | None = Query(None, ge=1),
    ) -> dict[str, Any]:
        """Train and eval metrics, chronological (`logged_at_*` are accepted, not applied)."""
        return together.metrics(job_id, global_step_from, global_step_to, resolution)

    @api.get("/finetune/download")
    def download(
        request: Request,
        ft_id: str,
        checkpoint_step: int | None = None,
        checkpoint: str | None = None,
    ) -> Response:
        """The weights tarball of the final model or of a checkpoint (Range requests served)."""
        content, name = together.download(ft_id, checkpoint_step, checkpoint)
        headers = {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Accept-Ranges": "bytes",
        }
        return _ranged(content, request.headers.get("range"), headers)


def _ranged(content: bytes, asked: str | None, headers: dict[str, str]) -> Response:
    """The whole body, or the part a `Range: bytes=a-b` header asks for (206)."""
    match = RANGE.match(asked or "")
    if match is None or not any(match.groups()) or not content:
        return Response(content, media_type="application/x-tar", headers=headers)
    first, last = match.groups()
    if not first:
        start, end = max(0, len(content) - int(last)), len(content) - 1
    else:
        start, end = int(first), min(int(last) if last else len(content) - 1, len(content) - 1)
    if start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(content)}"})
    headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(content)}"}
    return Response(content[start : end + 1], 206, headers, media_type="application/x-tar")


def _chat_routes(api: APIRouter, together: TogetherState) -> None:
    """OpenAI-compatible chat for base models and completed jobs' output models."""

    @api.post("/chat/completions", response_model=None)
    async def completion(request: Request) -> Response:
        """One deterministic completion; `stream: true` sends it as server-sent events."""
        body = _checked_chat(await json_body(request))
        answer = await run_in_threadpool(together.chat, body)
        if body.get("stream") is not True:
            return JSONResponse(answer)
        return StreamingResponse(_events(answer), media_type="text/event-stream")


def _checked_chat(body: Any) -> dict[str, Any]:
    """`model` a string and `messages` a non-empty list of turns."""
    if not isinstance(body, dict):
        raise invalid_type("body", "an object", body)
    if not isinstance(body.get("model"), str):
        raise missing("model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OpenAIError(400, "Invalid 'messages': expected a non-empty array.", param="messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise OpenAIError(400, "Every message needs a 'role'.", param="messages")
    return body


def _events(answer: dict[str, Any]) -> Iterator[bytes]:
    """`chat.completion.chunk` events, one per word, usage on the last; then `[DONE]`."""
    text = answer["choices"][0]["message"]["content"]
    head = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    pieces = chat.PIECE.findall(text)
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": piece},
            "finish_reason": "stop" if last else None,
            "seed": answer["choices"][0]["seed"] if last else None,
        }
        chunk = {**head, "choices": [choice], **({"usage": answer["usage"]} if last else {})}
        yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _storage_router(together: TogetherState) -> APIRouter:
    """The signed-URL PUT an upload sends its bytes to."""
    storage = APIRouter(prefix=STORAGE)

    @storage.put("/{file_id}", name="together_storage")
    async def put_bytes(file_id: str, request: Request) -> Response:
        """Keep the bytes when the signature matches (403 otherwise, as S3 answers)."""
        if request.query_params.get("X-Amz-Signature") != _signature(file_id):
            raise OpenAIError(
                403, "The request signature does not match.", code="SignatureDoesNotMatch"
            )
        etag = together.receive_bytes(file_id, await request.body())
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})

    return storage


def _field(form: FormData, name: str, default: str | None = None) -> str:
    """A required (or defaulted) text field of a form."""
    value = form.get(name, default)
    if value is None:
        raise missing(name)
    if not isinstance(value, str):
        raise OpenAIError(400, f"Invalid '{name}': expected a string, got a file.", param=name)
    return value


def _optional(form: FormData, name: str) -> str | None:
    """An optional text field of a form."""
    value = form.get(name)
    return value if isinstance(value, str) else None
