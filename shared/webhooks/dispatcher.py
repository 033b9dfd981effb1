"""A long-lived event loop with one pooled async sender; worker threads hand it whole batches.

Celery runs tasks in threads (or forked processes), and an async connection pool belongs to the
event loop it was opened in, so each process keeps one loop in a background thread: keep-alive
connections survive from batch to batch, and the per-origin limit holds across all the
process's tasks.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ftq.shared.settings import get_settings
from ftq.shared.webhooks.transport import AsyncWebhookSender, SendResult

T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    """One signed request to send."""

    url: str
    body: bytes
    headers: Mapping[str, str]


class Dispatcher:
    """Sends batches concurrently on a private event loop; thread-safe, blocking for callers."""

    def __init__(self, **sender_options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ftq-webhook-dispatcher", daemon=True
        )
        self._thread.start()
        self._sender = self._run(self._open(sender_options))

    @staticmethod
    async def _open(options: dict[str, Any]) -> AsyncWebhookSender:
        return AsyncWebhookSender(**options)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def send_many(self, requests: Sequence[Outgoing]) -> list[SendResult]:
        """Send every request concurrently (bounded per origin); results in the same order."""
        if not requests:
            return []
        return self._run(self._gather(requests))

    async def _gather(self, requests: Sequence[Outgoing]) -> list[SendResult]:
        sends = (self._sender.send(r.url, r.body, r.headers) for r in requests)
        return list(await asyncio.gather(*sends))

    def close(self) -> None:
        """Close the pooled connections and stop the loop."""
        self._run(self._sender.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


_dispatchers: dict[int, Dispatcher] = {}
_lock = threading.Lock()


def get_dispatcher() -> Dispatcher:
    """This process's dispatcher (a forked worker child builds its own)."""
    pid = os.getpid()
    with _lock:
        if pid not in _dispatchers:
            settings = get_settings()
            _dispatchers[pid] = Dispatcher(
                timeout=settings.webhook_timeout_seconds,
                allow_hosts=settings.webhook_allow_hosts,
                require_https=settings.environment == "production",
                max_connections_per_host=settings.webhook_concurrency_per_endpoint,
            )
        return _dispatchers[pid]
