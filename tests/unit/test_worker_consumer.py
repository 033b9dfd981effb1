"""The worker keeps consuming after Celery 5.7.0's error on closing a lost broker connection."""

from __future__ import annotations

from typing import Any

import pytest
from celery.worker.consumer import Consumer

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.consumer import ResilientConsumer


def test_the_app_uses_the_resilient_consumer() -> None:
    assert celery_app.conf.worker_consumer == "ftq.services.worker.consumer:ResilientConsumer"


def test_attribute_error_on_close_does_not_stop_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def celery_570_close(self: Any, exc: Exception) -> None:
        self.connection = None
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", celery_570_close)
    consumer = object.__new__(ResilientConsumer)
    consumer.on_connection_error_after_connected(ConnectionError("redis restarted"))
    assert consumer.connection is None  # the reconnect loop opens a new one


def test_other_errors_still_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, exc: Exception) -> None:
        raise RuntimeError("not ours to hide")

    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", broken)
    with pytest.raises(RuntimeError):
        object.__new__(ResilientConsumer).on_connection_error_after_connected(ConnectionError())
