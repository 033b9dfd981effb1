"""OpenAI's `/v1/chat/completions` over ftq (the SDK's `client.chat.completions`).

The relay sits on every completion's path, so its fixed cost is kept small: the route runs on the
event loop, the caller's key comes from a one-second in-process cache (`CachedTeamDep`), and the
routing (the team's tuned-model lookup) and the provider call share one worker-thread hop. A
stream's next piece is already being read while the one before it is sent (one piece ahead at
most, and no thread waits on a slow caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ftq.services.api.deps import CachedTeamDep, SessionDep
from ftq.shared.compat import chat as service
from ftq.shared.models import Team

router = APIRouter(tags=["openai-compatible"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(
    body: Annotated[dict[str, Any], Body()], session: SessionDep, team: CachedTeamDep
) -> Response:
    """A chat completion from the provider that serves the model; `stream: true` for SSE."""
    if body.get("stream") is True:
        first, rest = await run_in_threadpool(_opened, session, team, body)
        return StreamingResponse(
            _events(first, rest), media_type="text/event-stream", headers=SSE_HEADERS
        )
    return JSONResponse(await run_in_threadpool(_completed, session, team, body))


def _routed(session: Session, team: Team, body: dict[str, Any]) -> service.Routed:
    routed = service.route(session, team, body)
    if session.in_transaction():
        # Only reads: end the transaction now, so the connection goes back to the pool instead
        # of waiting out the provider's answer or the whole stream (nothing read: nothing to end).
        session.commit()
    return routed


def _completed(session: Session, team: Team, body: dict[str, Any]) -> dict[str, Any]:
    return service.complete(_routed(session, team, body))


def _opened(session: Session, team: Team, body: dict[str, Any]) -> tuple[bytes, Iterator[bytes]]:
    return service.stream(_routed(session, team, body))


async def _events(first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The bytes already read at once, then the rest, each read by a worker thread while the
    piece before it is sent."""
    reading = _read_next(rest)
    try:
        if first:
            yield first
        while (chunk := await reading) is not None:
            reading = _read_next(rest)
            yield chunk
    finally:
        # The end, or the caller went away: close the provider's stream once no thread reads it.
        reading.add_done_callback(lambda done: _finish(done, rest))


def _read_next(items: Iterator[bytes]) -> asyncio.Future[bytes | None]:
    return asyncio.ensure_future(run_in_threadpool(_next, items))


def _next(items: Iterator[bytes]) -> bytes | None:
    return next(items, None)


def _finish(reading: asyncio.Future[bytes | None], items: Iterator[bytes]) -> None:
    if not reading.cancelled():
        reading.exception()  # a read nobody waits for any more may fail unseen: no error
    close = getattr(items, "close", None)
    if close is not None:
        close()
