"""The Redis restart crash of Celery 5.7.0, reproduced with kombu alone, and ftq's transport fix.

A private redis-server is killed under three channels that consume auto-delete queues (as Celery's
control and gossip steps do); `Connection.collect()` then drops the transport's client. Closing a
channel collect could not close needs a new Redis client: kombu's own channel dereferences the
dropped client (AttributeError, which `ignore_errors` lets through: the worker's "Unrecoverable
error"); ftq's raises a connection error, which every close path ignores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
from kombu.common import ignore_errors

from ftq.services.worker import broker
from tests.drill.harness import RedisServer

CHANNELS = 3


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis (the machine's own must not be restarted under other tests)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def _collected_channels(url: str, transport: str | None) -> tuple[kombu.Connection, list]:
    """Channels consuming auto-delete queues, their broker killed, the connection collected."""
    connection = kombu.Connection(url, transport=transport)
    channels = []
    for name in ("control", "gossip", "events")[:CHANNELS]:
        channel = connection.channel()
        exchange = kombu.Exchange(f"ftq-test-{name}", type="fanout")
        queue = kombu.Queue(f"ftq-test-{name}", exchange=exchange, auto_delete=True)
        kombu.Consumer(channel, [queue], callbacks=[lambda *_: None], accept=["json"]).consume()
        channels.append(channel)
    return connection, channels


def _kill_and_collect(server: RedisServer, connection: kombu.Connection) -> None:
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    connection.collect(socket_timeout=1)


def test_kombus_redis_channel_crashes_on_close_after_collect(redis_server: RedisServer) -> None:
    connection, channels = _collected_channels(redis_server.url, None)
    _kill_and_collect(redis_server, connection)
    errors = []
    for channel in channels:
        try:
            ignore_errors(connection, channel.close)
        except AttributeError as exc:
            errors.append(str(exc))
    assert any("hostname" in error for error in errors), "the upstream bug: kombu #582"
    redis_server.start()


def test_ftqs_channel_turns_it_into_an_ignored_connection_error(
    redis_server: RedisServer,
) -> None:
    connection, channels = _collected_channels(redis_server.url, broker.TRANSPORT)
    assert isinstance(connection.transport, broker.Transport)
    _kill_and_collect(redis_server, connection)
    for channel in channels:
        ignore_errors(connection, channel.close)  # raises nothing
    with pytest.raises(broker.CollectedConnection):
        channels[-1]._connparams()
    assert issubclass(broker.CollectedConnection, connection.connection_errors)
    redis_server.start()


def test_the_worker_uses_ftqs_transport_only_for_plain_redis() -> None:
    assert broker.transport_for("redis://127.0.0.1:6379/0") == broker.TRANSPORT
    assert broker.transport_for("rediss://cache:6380/0") is None
    assert broker.transport_for("memory://") is None


def test_the_worker_app_is_built_with_ftqs_transport_for_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ftq.services.worker.celery_app import create_celery
    from ftq.shared.settings import reset_settings

    monkeypatch.setenv("FTQ_BROKER_URL", "redis://127.0.0.1:6379/13")
    reset_settings()
    try:
        app = create_celery()
        assert app.conf.broker_transport == broker.TRANSPORT
        assert isinstance(app.connection_for_write().transport, broker.Transport)
        assert "worker_consumer" not in app.conf.changes, "no consumer workaround is left"
    finally:
        reset_settings()
