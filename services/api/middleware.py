"""Request id, JSON access log and latency histogram for every request (pure ASGI)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ftq.services.api.errors import error_body
from ftq.shared.observability.logging import close_scope, open_scope
from ftq.shared.observability.metrics import record_request

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("ftq.access")
log = logging.getLogger(__name__)


def request_id_from(headers: Headers) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one."""
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if VALID_REQUEST_ID.fullmatch(given) else f"req_{uuid.uuid4().hex}"


def route_template(scope: Scope) -> str:
    """`/v1/jobs/{job_id}`, never the raw path, so label cardinality stays bounded."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    return f"{scope.get('root_path', '')}{path}" or "/"


class RequestContextMiddleware:
    """Binds the request id for logs, echoes it, and records latency by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        token = open_scope(request_id=request_id)
        started, status = time.perf_counter(), 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.exception("unhandled error: %s", type(exc).__name__)
            if response_started:
                raise
            await _internal_error(send, request_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            close_scope(token)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        method, route = scope["method"], route_template(scope)
        record_request(method, route, status, seconds)
        access_log.info(
            "%s %s %d",
            method,
            route,
            status,
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            },
        )


async def _internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        error_body("server_error", "internal_error", "internal server error", None)
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
