"""OpenAI's own `fine_tuning.job.*` webhooks, sent by the emulator (a test double of OpenAI).

`POST /_emulator/webhooks {"url", "secret": "whsec_…"}` turns them on. From then on a background
thread keeps the job clocks moving (jobs otherwise advance only when read) and, whenever a job is
seen reaching succeeded, failed or cancelled, POSTs OpenAI's event body with Standard Webhooks
headers. A delivery that does not get a 2xx is retried after 0.5, 1, 2, 4 and 8 s (real time), then
marked failed; OpenAI itself retries for up to 72 hours.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

TERMINAL_EVENTS = {
    "succeeded": "fine_tuning.job.succeeded",
    "failed": "fine_tuning.job.failed",
    "cancelled": "fine_tuning.job.cancelled",
}
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
TICK_S = 0.1
SEND_TIMEOUT_S = 5.0
USER_AGENT = "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)"


class WebhookTarget(BaseModel):
    """Where to send events and the `whsec_` secret that signs them."""

    model_config = ConfigDict(extra="forbid")

    url: str
    secret: str

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        """An http(s) URL."""
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("secret")
    @classmethod
    def _whsec(cls, secret: str) -> str:
        """`whsec_` followed by base64, as OpenAI issues them."""
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if not secret.startswith("whsec_") or not key:
            raise ValueError("must be 'whsec_' followed by base64")
        return secret


def event_body(event_type: str, job_id: str, created_at: int) -> dict[str, Any]:
    """OpenAI's webhook event object."""
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "created_at": created_at,
        "type": event_type,
        "data": {"id": job_id},
    }


def signature(secret: str, webhook_id: str, timestamp: int, payload: bytes) -> str:
    """Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.payload`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + payload
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass
class Delivery:
    """One event and its delivery attempts."""

    webhook_id: str
    type: str
    job_id: str
    payload: bytes
    status: str = "pending"
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_at: float = 0.0
    delivered_at: float | None = None
    history: list[int | str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """What `GET /_emulator/webhooks` shows."""
        shown = asdict(self)
        shown["event"] = json.loads(shown.pop("payload"))
        del shown["next_at"]
        return shown


class WebhookDispatcher:
    """Queues events and sends them from one daemon thread while a target is set."""

    def __init__(self, tick: Callable[[], None]) -> None:
        self.tick = tick
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.target: WebhookTarget | None = None
        self.deliveries: list[Delivery] = []
        self.generation = 0

    @property
    def enabled(self) -> bool:
        """Whether events are being sent."""
        return self.target is not None

    def configure(self, target: WebhookTarget | None) -> None:
        """Start sending to `target` (None stops); a new target starts a fresh delivery log."""
        with self.lock:
            self.target, self.deliveries = target, []
            self.generation += 1
            generation = self.generation
        self.wake.set()
        if target is not None:
            thread = threading.Thread(target=self._run, args=(generation,), daemon=True)
            thread.start()

    def enqueue(self, status: str, job_id: str, created_at: int) -> None:
        """Queue the event for a job that reached a terminal status."""
        if self.target is None or status not in TERMINAL_EVENTS:
            return
        body = event_body(TERMINAL_EVENTS[status], job_id, created_at)
        payload = json.dumps(body, separators=(",", ":")).encode()
        delivery = Delivery(f"wh_{uuid.uuid4().hex}", body["type"], job_id, payload)
        with self.lock:
            self.deliveries.append(delivery)
        self.wake.set()

    def snapshot(self) -> dict[str, Any]:
        """The target URL (never the secret) and every delivery so far."""
        with self.lock:
            url = self.target.url if self.target else None
            return {"url": url, "deliveries": [d.public() for d in self.deliveries]}

    def _run(self, generation: int) -> None:
        """Advance the job clocks and deliver due events until reconfigured."""
        with httpx.Client(timeout=SEND_TIMEOUT_S, follow_redirects=False) as http:
            while self.generation == generation:
                self.wake.clear()
                self.tick()
                for delivery, target in self._due(generation):
                    self._attempt(http, delivery, target)
                self.wake.wait(TICK_S)

    def _due(self, generation: int) -> list[tuple[Delivery, WebhookTarget]]:
        """Pending deliveries whose time has come."""
        with self.lock:
            if self.generation != generation or self.target is None:
                return []
            now = time.monotonic()
            due = [d for d in self.deliveries if d.status == "pending" and d.next_at <= now]
            return [(delivery, self.target) for delivery in due]

    def _attempt(self, http: httpx.Client, delivery: Delivery, target: WebhookTarget) -> None:
        """POST once; schedule a retry or settle the delivery."""
        code, error = _post(http, target, delivery)
        with self.lock:
            delivery.attempts += 1
            delivery.last_status_code, delivery.last_error = code, error
            delivery.history.append(code if code is not None else error or "error")
            if code is not None and 200 <= code < 300:
                delivery.status, delivery.delivered_at = "delivered", time.time()
            elif delivery.attempts > len(RETRY_DELAYS_S):
                delivery.status = "failed"
            else:
                delivery.next_at = time.monotonic() + RETRY_DELAYS_S[delivery.attempts - 1]


def _post(
    http: httpx.Client, target: WebhookTarget, delivery: Delivery
) -> tuple[int | None, str | None]:
    """(status code, None) or (None, connection error) for one signed POST."""
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            target.secret, delivery.webhook_id, timestamp, delivery.payload
        ),
    }
    try:
        response = http.post(target.url, content=delivery.payload, headers=headers)
    except httpx.HTTPError as error:
        return None, type(error).__name__
    return response.status_code, None
