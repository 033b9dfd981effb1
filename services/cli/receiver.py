"""A tiny webhook receiver that verifies Standard Webhooks signatures (demo and tests)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ftq.shared.webhooks.signing import InvalidSignature, verify


@dataclass
class Received:
    """One webhook as it arrived."""

    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        """The decoded body."""
        return dict(json.loads(self.body))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default backlog of 5 drops connects under concurrent sends

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hung up (timeouts, a killed worker) is expected here."""


@dataclass
class WebhookReceiver:
    """Collects webhooks on 127.0.0.1 and checks each against the known secrets.

    `status_code`, `reply_headers` and `delay` shape the answer; while `hold` is set to an
    unset Event, each request waits for it before answering (a receiver stuck mid-request).
    """

    secrets: list[str] = field(default_factory=list)
    status_code: int = 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: threading.Event | None = None
    port: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> WebhookReceiver:
        """Listen (on `port`, or a free one) in a background thread; keep-alive HTTP/1.1."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.record(headers, body)
                receiver.wait_before_answering()
                self.send_response(receiver.status_code)
                for name, value in receiver.reply_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        serve = partial(self.server.serve_forever, poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()
        return self

    def wait_before_answering(self) -> None:
        """Apply the configured delay and hold."""
        if self.delay:
            time.sleep(self.delay)
        hold = self.hold
        if hold is not None:
            hold.wait(timeout=120)

    def record(self, headers: dict[str, str], body: bytes) -> None:
        """Verify and keep one webhook."""
        verified = any(self._verifies(secret, headers, body) for secret in self.secrets)
        with self.lock:
            self.received.append(Received(headers, body, verified))

    @staticmethod
    def _verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
        try:
            verify(secret, body, headers)
        except InvalidSignature:
            return False
        return True

    def wait_for(self, event_type: str, timeout: float = 60.0) -> Received:
        """The first webhook of a type, waiting for it to arrive."""
        return self.wait_count(1, event_type, timeout)[0]

    def wait_count(
        self, count: int, event_type: str | None = None, timeout: float = 60.0
    ) -> list[Received]:
        """The first `count` webhooks (of a type, if given), waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [
                    item
                    for item in self.received
                    if event_type is None or item.event.get("type") == event_type
                ]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() >= deadline:
                what = f"{event_type} webhooks" if event_type else "webhooks"
                raise TimeoutError(f"{len(found)} of {count} {what} within {timeout:.0f} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop listening (the port may be bound again by `start`)."""
        if self.hold is not None:
            self.hold.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
