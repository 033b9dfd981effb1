"""The real `openai` SDK against ftq's app in the test's own transaction, strict validation on.

The SDK speaks httpx2; `TestClientTransport` hands each of its requests to the test's
`TestClient` (which shares the rolled-back session), so every answer the SDK parses comes from
the app under test, and `_strict_response_validation=True` makes the SDK's own types fail the test
on any shape they do not accept.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2
from fastapi.testclient import TestClient
from openai import OpenAI


class TestClientTransport(httpx2.BaseTransport):
    """An httpx2 transport that answers through a Starlette TestClient."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        answer = self.client.request(
            request.method,
            str(request.url),
            headers=[(k, v) for k, v in request.headers.multi_items() if k.lower() != "host"],
            content=body,
        )
        return httpx2.Response(
            answer.status_code,
            headers=list(answer.headers.multi_items()),
            content=answer.content,
            request=request,
        )


def sdk(
    client: TestClient,
    key: str,
    *,
    strict: bool = True,
    on_response: Callable[[httpx2.Response], None] | None = None,
) -> OpenAI:
    """The official SDK, pointed at the app under test with a team key."""
    hooks = {"response": [on_response]} if on_response else {}
    return OpenAI(
        api_key=key,
        base_url="http://testserver/v1",
        http_client=httpx2.Client(transport=TestClientTransport(client), event_hooks=hooks),
        max_retries=0,
        _strict_response_validation=strict,
    )
