"""Signed delivery through the real sender: verified by `standardwebhooks`, retried, logged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from shared.receiver import WebhookReceiver
from shared.webhooks import service
from shared.webhooks.schemas import WebhookEndpointCreate
from shared.webhooks.transport import WebhookSender
from tests.factories import team_row


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    with WebhookSender(timeout=5, allow_hosts=["127.0.0.1"], require_https=False) as client:
        yield client


def _delivery(session: Session, event_id: str) -> WebhookDelivery:
    return session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
    ).one()


def test_delivery_is_signed_and_verifies_with_the_library(
    session: Session, receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    team, _ = team_row(session)
    endpoint, secret = service.create_endpoint(
        session, team, WebhookEndpointCreate(url=receiver.url)
    )
    event_id = service.emit(session, team.id, "job.succeeded", {"id": "ftj_1"})
    delivery = _delivery(session, event_id)
    assert service.deliver(session, delivery.id, sender) == "succeeded"
    (hook,) = receiver.received
    payload = Webhook(secret).verify(hook.body, hook.headers)
    assert payload["type"] == "job.succeeded" and payload["data"] == {"id": "ftj_1"}
    assert hook.headers["webhook-id"] == event_id
    tampered = hook.body.replace(b"ftj_1", b"ftj_2")
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(tampered, hook.headers)
    assert endpoint.id == delivery.endpoint_id


def test_failed_attempt_is_logged_and_retried_later(
    session: Session, receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    receiver.status_code = 500
    team, _ = team_row(session)
    service.create_endpoint(session, team, WebhookEndpointCreate(url=receiver.url))
    delivery = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))
    assert service.deliver(session, delivery.id, sender) == "pending"
    assert delivery.attempts == 1 and delivery.last_status_code == 500
    assert delivery.next_attempt_at is not None
    attempt = session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
    ).one()
    assert attempt.status_code == 500 and attempt.duration_ms > 0
    receiver.status_code = 200
    assert service.deliver(session, delivery.id, sender) == "succeeded"
    ids = {h.headers["webhook-id"] for h in receiver.received}
    assert ids == {delivery.event_id}, "a retry keeps the webhook-id"


def test_410_disables_the_endpoint(
    session: Session, receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    receiver.status_code = 410
    team, _ = team_row(session)
    endpoint, _ = service.create_endpoint(session, team, WebhookEndpointCreate(url=receiver.url))
    delivery = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))
    assert service.deliver(session, delivery.id, sender) == "failed"
    assert session.get(WebhookEndpoint, endpoint.id).disabled is True  # type: ignore[union-attr]
    assert (
        service.emit(session, team.id, "job.failed", {"id": "y"})
        and len(session.scalars(select(WebhookDelivery)).all()) == 1
    )


def test_rotation_signs_with_both_secrets(
    session: Session, receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    team, _ = team_row(session)
    endpoint, old = service.create_endpoint(session, team, WebhookEndpointCreate(url=receiver.url))
    _, new = service.rotate_secret(session, team, endpoint.id)
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    service.deliver(session, delivery.id, sender)
    (hook,) = receiver.received
    assert len(hook.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(hook.body, hook.headers)["type"] == "job.running"
