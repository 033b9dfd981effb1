"""The Redis transport ftq's workers use: kombu's, with a channel that knows its connection is gone.

Root cause of Celery 5.7.0's "Unrecoverable error: AttributeError: 'NoneType' object has no
attribute 'hostname'" on a Redis restart (reproduced in tests/unit/test_broker_transport.py):
when the broker drops, Celery's consumer calls `Connection.collect()`, which closes the channels
it can and then sets `Transport.client = None`. A channel whose close failed on the lost socket
stays open; when it is closed again (Celery closes the connection right after collecting it, and
the bootsteps close their own channels on restart), kombu's Redis channel deletes its auto-delete
queues, which needs a fresh Redis client, which reads `conninfo.hostname` from the now-None
client. That AttributeError is not one of the transport's connection errors, so `ignore_errors`
lets it through and the worker exits. The same trace is kombu issue #582
(https://github.com/celery/kombu/issues/582), closed without a fix for this path. Here the channel
raises a Redis ConnectionError instead: a connection error, which every close path ignores, and
the consumer reconnects.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "ftq.services.worker.broker:Transport"


class CollectedConnection(RedisConnectionError):
    """The channel's broker connection was already collected after a broker drop."""


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    """Refuses to build a new Redis client once its connection has been collected."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise CollectedConnection("the broker connection was collected after it dropped")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """kombu's Redis transport with the channel above."""

    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """ftq's transport for a plain `redis://` broker; None keeps kombu's choice for the others."""
    return TRANSPORT if broker_url.startswith("redis://") else None
