"""The worker's consumer, surviving Celery 5.7.0's crash when the broker connection drops."""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


class ResilientConsumer(Consumer):  # type: ignore[misc]
    """Celery 5.7.0 closes the lost connection after collecting it, and that close raises
    AttributeError (conninfo.hostname) when unacked messages are restored: the worker exited
    with "Unrecoverable error" on a Redis restart. Swallow exactly that and reconnect."""

    def on_connection_error_after_connected(self, exc: Any) -> None:
        """Clean up after a broker drop; the reconnect loop follows either way."""
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            log.warning("ignored %r while closing the lost broker connection", error)
