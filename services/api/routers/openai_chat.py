"""OpenAI's `/v1/chat/completions` over ftq (the SDK's `client.chat.completions`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from ftq.services.api.deps import SessionDep, TeamDep
from ftq.shared.compat import chat as service

router = APIRouter(tags=["openai-compatible"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/v1/chat/completions", response_model=None)
def create_chat_completion(
    body: Annotated[dict[str, Any], Body()], session: SessionDep, team: TeamDep
) -> Response:
    """A chat completion from the provider that serves the model; `stream: true` for SSE."""
    routed = service.route(session, team, body)
    # Only reads so far: end the transaction now, so the connection goes back to the pool
    # instead of waiting out the provider's answer or the whole stream.
    session.commit()
    if routed.streams:
        first, rest = service.stream(routed)
        return StreamingResponse(
            _events(first, rest), media_type="text/event-stream", headers=SSE_HEADERS
        )
    return JSONResponse(service.complete(routed))


async def _events(first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes already read at once, then the rest as a worker thread reads them."""
    if first:
        yield first
    async for chunk in iterate_in_threadpool(rest):
        yield chunk
