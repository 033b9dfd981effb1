"""The serving worker: with FTQ_LOCAL_SERVING_URL set, `local:` chat completions leave the API's
process for the worker's HTTP endpoint (guarded by the shared token); a worker that is down is a
clear 503 to the caller, and a wrong token a 502 that blames the operator, not the caller."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ftq.services.worker.serving import create_app
from ftq.shared.serving import RunningServer, serve_in_thread
from ftq.shared.settings import reset_settings
from tests.factories import auth
from tests.local.test_local_serving import QUESTION, Trained
from tests.local.test_local_serving import trained as trained  # fixture

TOKEN = "serving-token-0123456789"


class Counted:
    """An ASGI wrapper counting the completions the serving worker answered."""

    def __init__(self, app: object) -> None:
        self.app, self.completions = app, 0

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
            self.completions += 1
        await self.app(scope, receive, send)  # type: ignore[operator]


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningServer, Counted]]:
    monkeypatch.setenv("FTQ_LOCAL_SERVING_TOKEN", TOKEN)
    reset_settings()
    app = Counted(create_app())
    running = serve_in_thread(app)
    monkeypatch.setenv("FTQ_LOCAL_SERVING_URL", running.url)
    reset_settings()
    yield running, app
    running.stop()


def _ask(client: TestClient, trained: Trained, model: str) -> tuple[int, dict]:
    body = {"model": model, "messages": QUESTION, "max_tokens": 8}
    answer = client.post("/v1/chat/completions", json=body, headers=auth(trained.team))
    return answer.status_code, answer.json()


def test_local_completions_are_answered_by_the_serving_worker(
    client: TestClient,
    trained: Trained,
    worker: tuple[RunningServer, Counted],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running, app = worker
    for name in (trained.model, trained.checkpoints[0]):
        status, completion = _ask(client, trained, name)
        assert status == 200, completion
        assert completion["model"] == name and completion["choices"][0]["message"]["content"]
        assert completion["usage"]["completion_tokens"] > 0
    assert app.completions == 2, "both went through the worker's HTTP endpoint"

    body = {"model": trained.model, "messages": QUESTION, "max_tokens": 8, "stream": True}
    streamed = client.post("/v1/chat/completions", json=body, headers=auth(trained.team))
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    pieces = [
        json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.split("\n\n")
        if line.startswith("data: {") and '"choices":[{' in line
    ]
    whole = _ask(client, trained, trained.model)[1]["choices"][0]["message"]["content"]
    assert "".join(pieces).strip() == whole and app.completions == 4, "streamed by the worker"

    status, error = _ask(client, trained, f"{trained.model}:ckpt-step-5")
    assert status == 404 and app.completions == 4, "an unknown checkpoint never reaches the worker"

    monkeypatch.setenv("FTQ_LOCAL_SERVING_TOKEN", "not-the-token-000000")
    reset_settings()
    status, error = _ask(client, trained, trained.model)
    assert status == 502 and error["error"]["code"] == "provider_auth_failed", error
    assert "not-the-token" not in str(error) and TOKEN not in str(error)

    running.stop()
    status, error = _ask(client, trained, trained.model)
    assert status == 503, error
    assert "serving worker" in error["error"]["message"]


def test_the_serving_worker_refuses_requests_without_its_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FTQ_LOCAL_SERVING_TOKEN", TOKEN)
    reset_settings()
    with TestClient(create_app()) as direct:
        body = {"model": "local:x:y:z", "messages": QUESTION}
        assert direct.post("/v1/chat/completions", json=body).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert direct.post("/v1/chat/completions", json=body, headers=wrong).status_code == 401
        assert direct.get("/healthz").json() == {"status": "ok"}
    reset_settings()
