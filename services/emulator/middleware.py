"""Request plumbing of the emulator (a test double of OpenAI): ids, headers, counts, faults."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ftq.services.emulator import azure
from ftq.services.emulator.azure import is_azure
from ftq.services.emulator.errors import OpenAIError
from ftq.services.emulator.faults import Draw, lost_response, server_error
from ftq.services.emulator.store import EmulatorState
from ftq.services.emulator.together.paths import STORAGE_ROUTE, is_together

SECRET_PARAM = re.compile(r"key|token|secret|signature", re.IGNORECASE)


def route_path(scope: Scope) -> str:
    """The path inside this app (without the mount prefix)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


class EmulatorMiddleware:
    """Adds `x-request-id` and rate-limit headers, counts calls, injects faults."""

    def __init__(self, app: ASGIApp, state: EmulatorState, routes: list[BaseRoute]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        inner = route_path(scope)
        refusal = None
        if is_azure(inner):
            refusal = azure.check_request(_query(scope), Headers(scope=scope))
            scope = _rewritten(scope, inner)
        route = f"{scope['method']} {self._template(scope)}"
        admin = inner.startswith("/_emulator")
        entry = None if admin else _entry(scope, inner, route)
        unfaulted = admin or refusal is not None or self._storage_unfaulted(route)
        headers, draw = self.state.on_request(route, _tokens(scope), unfaulted, entry)
        headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        send = _status_recorder(send, entry)
        if refusal is not None:
            await _send_error(refusal, headers, scope, receive, send)
        else:
            await self._faulted_or_forwarded(draw, scope, receive, send, headers)

    async def _faulted_or_forwarded(
        self, draw: Draw, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        """Apply the drawn faults, or serve the request."""
        if draw.latency_s:
            await asyncio.sleep(draw.latency_s)
        if draw.error is not None:
            await _send_error(draw.error, headers, scope, receive, send)
        elif draw.lose_response:
            await self._handle_then_lose(scope, receive, send, headers)
        else:
            await self._forward(scope, receive, send, headers)

    def _storage_unfaulted(self, route: str) -> bool:
        """Together's upload PUT stands for its object store: faulted only when `only` names it."""
        return route == STORAGE_ROUTE and route not in (self.state.faults.only or [])

    def _template(self, scope: Scope) -> str:
        """The matching route's path template, e.g. `/v1/files/{file_id}`."""
        partial = "unmatched"
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "unmatched"))
            if match == Match.PARTIAL and partial == "unmatched":
                partial = str(getattr(route, "path", "unmatched"))
        return partial

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        """Run the app, adding our headers; an unexpected crash becomes a 500 server_error."""
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(k.encode(), v.encode()) for k, v in headers.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise
            await _send_error(server_error(500), headers, scope, receive, send)

    async def _handle_then_lose(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> None:
        """Do the work, drop the answer, send a 502: the retry trap for non-idempotent POSTs."""

        async def discard(_: Message) -> None:
            return None

        with contextlib.suppress(Exception):
            await self.app(scope, receive, discard)
        await _send_error(lost_response(), headers, scope, receive, send)


async def _send_error(
    error: OpenAIError, headers: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer with an OpenAI error plus our headers."""
    response = error.response()
    response.headers.update(headers)
    await response(scope, receive, send)


def _tokens(scope: Scope) -> int:
    """A request's token cost for the rate-limit headers: body bytes / 4."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value) // 4
    return 0


def _query(scope: Scope) -> QueryParams:
    """The request's query parameters."""
    return QueryParams(scope.get("query_string", b""))


def _rewritten(scope: Scope, inner: str) -> Scope:
    """An Azure request re-addressed to the `/v1` route that serves it."""
    path = scope.get("root_path", "") + azure.openai_path(inner)
    return {**scope, "path": path, "raw_path": path.encode()}


def _entry(scope: Scope, inner: str, route: str) -> dict[str, Any]:
    """The shape of one API request for `/_emulator/requests`; credentials only by kind."""
    headers, azure_call = Headers(scope=scope), is_azure(inner)
    query = {
        key: "***" if SECRET_PARAM.search(key) else value for key, value in _query(scope).items()
    }
    return {
        "method": scope["method"],
        "path": inner,
        "query": query,
        "api": "azure" if azure_call else "together" if is_together(inner) else "openai",
        "route": azure.azure_route(route) if azure_call else route,
        "auth": azure.auth_kind(headers),
        "organization": headers.get("openai-organization"),
        "project": headers.get("openai-project"),
        "status": None,
    }


def _status_recorder(send: Send, entry: dict[str, Any] | None) -> Send:
    """Note the response status in the request log entry."""
    if entry is None:
        return send

    async def recording(message: Message) -> None:
        if message["type"] == "http.response.start":
            entry["status"] = message["status"]
        await send(message)

    return recording
