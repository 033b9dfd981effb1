"""The emulator sends OpenAI's own signed `fine_tuning.job.*` webhooks, which the SDK verifies."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from openai.types.webhooks import (
    FineTuningJobCancelledWebhookEvent,
    FineTuningJobFailedWebhookEvent,
    FineTuningJobSucceededWebhookEvent,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread

SECRET = "whsec_" + base64.b64encode(b"emulator-webhook-test-secret").decode()


@dataclass
class Receiver:
    """A webhook endpoint that records what it gets and answers `statuses` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def endpoint(self, request: Request) -> Response:
        """Record one delivery."""
        body = await request.body()
        with self.lock:
            self.received.append((body, dict(request.headers)))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str, Receiver]]:
    """(emulator root, receiver URL, receiver)."""
    receiver = Receiver()
    hook_root, stop_hook = serve_in_thread(
        Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    )
    root, stop = serve_in_thread(create_app(speed=600.0))
    yield root, f"{hook_root}/hook", receiver
    stop()
    stop_hook()


@pytest.fixture
def env(
    servers: tuple[str, str, Receiver],
) -> Iterator[tuple[openai.OpenAI, EmulatorControl, str, Receiver]]:
    """SDK client, controls, receiver URL and a cleared receiver."""
    root, url, receiver = servers
    control = EmulatorControl(root)
    control.reset()
    receiver.received.clear()
    receiver.statuses.clear()
    client = openai.OpenAI(api_key="test", base_url=f"{root}/v1", max_retries=0)
    yield client, control, url, receiver
    control.reset()
    control.close()


def upload(client: openai.OpenAI, n: int) -> str:
    """A chat training file of n examples."""
    lines = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(n)
    ]
    content = "\n".join(json.dumps(line) for line in lines).encode()
    return client.files.create(file=("t.jsonl", content), purpose="fine-tune").id


def settled(control: EmulatorControl, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    """Wait until `count` deliveries are no longer pending."""
    deadline = time.monotonic() + timeout
    while True:
        deliveries = control.webhook_deliveries()
        done = [d for d in deliveries if d["status"] != "pending"]
        if len(done) >= count or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.05)


def test_terminal_jobs_send_signed_openai_webhooks_without_polling(
    env: tuple[openai.OpenAI, EmulatorControl, str, Receiver],
) -> None:
    client, control, url, receiver = env
    assert control.webhooks(url, SECRET) == {"url": url, "deliveries": []}
    good, small = upload(client, 12), upload(client, 3)
    succeeded = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=good)
    failed = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=small)
    cancelled = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=good)
    client.fine_tuning.jobs.cancel(cancelled.id)
    # No reads from here on: the emulator's own clock must finish the jobs and notify.
    deliveries = settled(control, 3)
    assert [d["status"] for d in deliveries] == ["delivered"] * 3
    events = {}
    for body, headers in receiver.received:
        event = client.webhooks.unwrap(body, headers, secret=SECRET)
        events[json.loads(body)["data"]["id"]] = event
        assert headers["webhook-id"].startswith("wh_") and event.id.startswith("evt_")
        assert headers["content-type"] == "application/json"
    assert isinstance(events[succeeded.id], FineTuningJobSucceededWebhookEvent)
    assert isinstance(events[failed.id], FineTuningJobFailedWebhookEvent)
    assert isinstance(events[cancelled.id], FineTuningJobCancelledWebhookEvent)
    assert client.fine_tuning.jobs.retrieve(succeeded.id).status == "succeeded"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        body, headers = receiver.received[0]
        client.webhooks.unwrap(body, headers, secret="whsec_" + base64.b64encode(b"x").decode())
    assert SECRET not in json.dumps(deliveries)


def test_failed_deliveries_are_retried_with_the_same_webhook_id(
    env: tuple[openai.OpenAI, EmulatorControl, str, Receiver],
) -> None:
    client, control, url, receiver = env
    receiver.statuses.extend([503, 500])
    control.webhooks(url, SECRET)
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(client, 12))
    control.advance(job.id)
    (delivery,) = settled(control, 1)
    assert delivery["status"] == "delivered" and delivery["history"] == [503, 500, 200]
    assert delivery["event"]["data"] == {"id": job.id}
    ids = {headers["webhook-id"] for _, headers in receiver.received}
    assert ids == {delivery["webhook_id"]} and len(receiver.received) == 3
    for body, headers in receiver.received:
        client.webhooks.verify_signature(body, headers, secret=SECRET)


def test_no_webhooks_unless_configured_and_after_stop(
    env: tuple[openai.OpenAI, EmulatorControl, str, Receiver],
) -> None:
    client, control, url, receiver = env
    training = upload(client, 12)
    control.advance(client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id)
    control.webhooks(url, SECRET)
    control.stop_webhooks()
    control.advance(client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training).id)
    time.sleep(0.3)
    assert receiver.received == [] and control.webhook_deliveries() == []


def test_webhook_config_is_checked(
    env: tuple[openai.OpenAI, EmulatorControl, str, Receiver],
) -> None:
    _, control, url, _ = env
    admin = str(control.http.base_url).rstrip("/")
    for body in ({"url": url, "secret": "plain"}, {"url": "ftp://x", "secret": SECRET}, {}):
        response = httpx.post(f"{admin}/webhooks", json=body)
        assert response.status_code == 400, body
