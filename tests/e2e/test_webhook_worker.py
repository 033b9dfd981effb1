"""Webhook delivery by a real Celery worker on Redis and Postgres: outages, retries, SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from ftq.services.cli.receiver import WebhookReceiver
from ftq.services.worker.celery_app import create_celery
from ftq.shared.db import make_engine
from ftq.shared.migrate import upgrade
from ftq.shared.models import WebhookAttempt, WebhookDelivery
from ftq.shared.outbox import relay
from ftq.shared.serving import free_port
from ftq.shared.settings import Settings
from ftq.shared.teams import service as teams
from ftq.shared.teams.schemas import TeamCreate
from ftq.shared.webhooks import service
from ftq.shared.webhooks.schemas import WebhookEndpointCreate
from tests.e2e.stack import BIN, ROOT, base_env
from tests.services import drop_database, fresh_database, postgres_url_or_skip, redis_url_or_skip

pytestmark = pytest.mark.e2e
LEASE_SECONDS = 3


@dataclass
class Backend:
    """A fresh database, a Redis broker and a beat stand-in sending `webhooks.sweep`."""

    database_url: str
    engine: Engine
    broker: Celery
    env: dict[str, str]

    def emit(self, url: str) -> tuple[str, str]:
        """Register an endpoint for `url`, emit one event and enqueue its delivery."""
        with Session(self.engine) as session:
            created = teams.create_team(session, TeamCreate(name=f"team-{time.monotonic_ns()}"))
            team = teams.get_team(session, created.id)
            _, secret = service.create_endpoint(session, team, WebhookEndpointCreate(url=url))
            event_id = service.emit(session, team.id, "job.succeeded", {"id": "ftj_e2e"})
            session.commit()
            relay(session, lambda task, args: self.broker.send_task(task, args=list(args)))
            session.commit()
        return event_id, secret

    def delivery(self, event_id: str) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
        """A delivery and its attempts as committed now."""
        with Session(self.engine) as session:
            query = select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
            delivery = session.scalars(query).one()
            attempts = session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery.id)
                .order_by(WebhookAttempt.id)
            ).all()
            session.expunge_all()
            return delivery, list(attempts)

    def wait_delivery(
        self, event_id: str, done: Callable[[WebhookDelivery], bool], timeout: float = 30
    ) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
        """Poll until `done` holds for the delivery."""
        deadline = time.monotonic() + timeout
        while True:
            delivery, attempts = self.delivery(event_id)
            if done(delivery):
                return delivery, attempts
            assert time.monotonic() < deadline, f"delivery stuck: {delivery.__dict__}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    postgres_url_or_skip()
    redis_url = redis_url_or_skip()
    database_url = fresh_database("ftq_e2e_webhooks")
    upgrade(database_url)
    engine = make_engine(database_url)
    broker = create_celery(Settings(broker_url=redis_url))
    env = base_env(
        tmp_path_factory.mktemp("webhooks"),
        FTQ_DATABASE_URL=database_url,
        FTQ_BROKER_URL=redis_url,
        FTQ_WEBHOOK_LEASE_SECONDS=str(LEASE_SECONDS),
    )
    stop = threading.Event()
    beat = threading.Thread(target=_sweep_every, args=(broker, stop), daemon=True)
    beat.start()
    try:
        yield Backend(database_url, engine, broker, env)
    finally:
        stop.set()
        beat.join(timeout=5)
        engine.dispose()
        drop_database(database_url)


def _sweep_every(broker: Celery, stop: threading.Event) -> None:
    """What `celery beat` does for webhooks: send a sweep twice a second."""
    while not stop.wait(0.5):
        broker.send_task("webhooks.sweep")


class Worker:
    """A `celery worker` process for the webhooks queue."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [str(BIN / "celery"), "-A", "ftq.services.worker.celery_app", "worker"]
        args += ["-Q", "webhooks", "-P", "threads", "-c", "2", "--without-gossip"]
        args += ["--without-mingle", "-l", "WARNING"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def worker(backend: Backend, tmp_path: Path) -> Iterator[Worker]:
    running = Worker(backend.env, tmp_path / "worker.log")
    running.start()
    yield running
    running.stop()


def _verify(secret: str, received: Any) -> dict[str, Any]:
    return dict(Webhook(secret).verify(received.body, received.headers))


def test_receiver_down_then_up_is_delivered_on_the_retry_schedule(
    backend: Backend, worker: Worker
) -> None:
    port = free_port()
    event_id, secret = backend.emit(f"http://127.0.0.1:{port}/hooks")
    first, _ = backend.wait_delivery(event_id, lambda d: d.attempts >= 1)
    assert first.status == "pending" and first.last_error == "connection refused"
    receiver = WebhookReceiver(port=port).start()
    try:
        delivered, attempts = backend.wait_delivery(event_id, lambda d: d.status != "pending")
        (hook,) = receiver.wait_count(1)
    finally:
        receiver.stop()
    assert delivered.status == "succeeded"
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [
        (1, None, "connection refused"),
        (2, 200, None),
    ]
    gap = (attempts[1].created_at - attempts[0].created_at).total_seconds()
    assert 3.5 <= gap <= 10, "the second attempt follows the 5 s step (with jitter)"
    assert hook.headers["webhook-id"] == event_id
    assert _verify(secret, hook)["data"] == {"id": "ftj_e2e"}


def test_worker_killed_mid_delivery_delivers_after_restart_with_the_same_id(
    backend: Backend, worker: Worker
) -> None:
    hold = threading.Event()
    receiver = WebhookReceiver(hold=hold).start()
    try:
        event_id, secret = backend.emit(receiver.url)
        receiver.wait_count(1, timeout=30)  # the worker is inside the request now
        worker.kill()
        stuck, attempts = backend.delivery(event_id)
        assert (stuck.status, stuck.attempts, attempts) == ("pending", 0, [])
        assert stuck.lease_token is not None, "leased to the dead worker"
        hold.set()
        worker.start()
        delivered, attempts = backend.wait_delivery(event_id, lambda d: d.status != "pending")
        killed, retried = receiver.wait_count(2)
    finally:
        receiver.stop()
    assert delivered.status == "succeeded"
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 200)]
    assert killed.headers["webhook-id"] == retried.headers["webhook-id"] == event_id
    assert killed.body == retried.body
    assert _verify(secret, retried)["type"] == "job.succeeded"
