"""A tiny webhook receiver that verifies Standard Webhooks signatures (demo and tests)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.webhooks.signing import InvalidSignature, verify


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


@dataclass
class WebhookReceiver:
    """Collects webhooks on 127.0.0.1 and checks each against the known secrets."""

    secrets: list[str] = field(default_factory=list)
    status_code: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def start(self) -> WebhookReceiver:
        """Listen on a free port in a background thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.record(headers, body)
                self.send_response(receiver.status_code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for item in self.received:
                    if item.event.get("type") == event_type:
                        return item
            time.sleep(0.05)
        raise TimeoutError(f"no {event_type} webhook within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
