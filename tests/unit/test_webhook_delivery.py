"""Delivery through the real dispatcher into a real receiver, recorded in the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from ftq.services.cli.receiver import WebhookReceiver
from ftq.shared.errors import Conflict
from ftq.shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ftq.shared.serving import free_port
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks import service
from ftq.shared.webhooks.dispatcher import Dispatcher
from ftq.shared.webhooks.schemas import WebhookEndpointCreate
from ftq.shared.webhooks.transport import SendResult
from tests.factories import job_row, team_row


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


@pytest.fixture(scope="module")
def dispatcher() -> Iterator[Dispatcher]:
    sending = Dispatcher(
        timeout=0.5, total_timeout=2, allow_hosts=["127.0.0.1"], require_https=False
    )
    yield sending
    sending.close()


def _register(session: Session, url: str, **fields: object) -> tuple[Any, WebhookEndpoint, str]:
    team, _ = team_row(session)
    endpoint, secret = service.create_endpoint(
        session, team, WebhookEndpointCreate(url=url, **fields)
    )
    return team, endpoint, secret


def _delivery(session: Session, event_id: str) -> WebhookDelivery:
    return session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
    ).one()


def _attempts(session: Session, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
    return list(session.scalars(query.order_by(WebhookAttempt.id)))


def _come_due(session: Session, delivery: WebhookDelivery) -> None:
    """The retry time has come (instead of waiting for it)."""
    delivery.next_attempt_at = utcnow()
    session.flush()


def _wait_seconds(delivery: WebhookDelivery) -> float:
    assert delivery.next_attempt_at is not None
    return (as_utc(delivery.next_attempt_at) - utcnow()).total_seconds()  # type: ignore[operator]


def test_delivery_is_signed_and_verifies_with_the_library(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team, endpoint, secret = _register(session, receiver.url)
    event_id = service.emit(session, team.id, "job.succeeded", {"id": "ftj_1"})
    delivery = _delivery(session, event_id)
    assert service.deliver(session, delivery.id, dispatcher) == "succeeded"
    (hook,) = receiver.received
    payload = Webhook(secret).verify(hook.body, hook.headers)
    assert payload["type"] == "job.succeeded" and payload["data"] == {"id": "ftj_1"}
    assert hook.headers["webhook-id"] == event_id
    tampered = hook.body.replace(b"ftj_1", b"ftj_2")
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(tampered, hook.headers)
    (attempt,) = _attempts(session, delivery)
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)
    assert delivery.delivered_at is not None and delivery.endpoint_id == endpoint.id


def test_receiver_down_then_up_is_delivered_once_with_every_attempt_logged(
    session: Session, dispatcher: Dispatcher
) -> None:
    port = free_port()
    team, _, secret = _register(session, f"http://127.0.0.1:{port}/hooks")
    delivery = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))
    assert service.deliver(session, delivery.id, dispatcher) == "pending"
    assert 4 <= _wait_seconds(delivery) <= 6, "second attempt 5 s later, with jitter"
    _come_due(session, delivery)
    assert service.deliver(session, delivery.id, dispatcher) == "pending"
    assert 240 <= _wait_seconds(delivery) <= 360, "third attempt 5 min later, with jitter"
    receiver = WebhookReceiver(port=port, secrets=[secret]).start()
    try:
        assert service.deliver(session, delivery.id, dispatcher) == "pending", "not due yet"
        _come_due(session, delivery)
        assert service.deliver(session, delivery.id, dispatcher) == "succeeded"
    finally:
        receiver.stop()
    (hook,) = receiver.received
    assert hook.verified and hook.headers["webhook-id"] == delivery.event_id
    log = [(a.attempt, a.status_code, a.error) for a in _attempts(session, delivery)]
    assert log == [(1, None, "connection refused"), (2, None, "connection refused"), (3, 200, None)]


def test_500_is_retried_with_the_snippet_logged_and_retry_after_honoured(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    receiver.status_code, receiver.reply_headers = 503, {"retry-after": "600"}
    team, _, _ = _register(session, receiver.url)
    delivery = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))
    assert service.deliver(session, delivery.id, dispatcher) == "pending"
    assert 590 <= _wait_seconds(delivery) <= 610, "Retry-After beats the 5 s step"
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        1,
        503,
        "HTTP 503",
    )
    receiver.status_code, receiver.reply_headers = 200, {}
    _come_due(session, delivery)
    assert service.deliver(session, delivery.id, dispatcher) == "succeeded"
    assert {h.headers["webhook-id"] for h in receiver.received} == {delivery.event_id}
    assert [a.status_code for a in _attempts(session, delivery)] == [503, 200]


def test_the_schedule_ends_in_failed_after_eight_attempts(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    receiver.status_code = 500
    team, _, _ = _register(session, receiver.url)
    delivery = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))
    delivery.attempts = 7
    session.flush()
    assert service.deliver(session, delivery.id, dispatcher) == "failed"
    assert delivery.attempts == 8 and delivery.next_attempt_at is None


def test_410_disables_the_endpoint_and_its_other_deliveries_stop(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    receiver.status_code = 410
    team, endpoint, _ = _register(session, receiver.url)
    first = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))
    second = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "y"}))
    assert service.deliver(session, first.id, dispatcher) == "failed"
    assert (endpoint.disabled, endpoint.disabled_reason) == (True, "410 Gone")
    assert service.deliver(session, second.id, dispatcher) == "failed"
    assert len(receiver.received) == 1 and "disabled" in (second.last_error or "")
    service.emit(session, team.id, "job.failed", {"id": "z"})
    assert len(session.scalars(select(WebhookDelivery)).all()) == 2


def test_301_is_a_failure_and_is_not_followed(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    elsewhere = WebhookReceiver().start()
    try:
        receiver.status_code, receiver.reply_headers = 301, {"location": elsewhere.url}
        team, _, _ = _register(session, receiver.url)
        delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
        assert service.deliver(session, delivery.id, dispatcher) == "pending"
    finally:
        elsewhere.stop()
    assert elsewhere.received == [] and len(receiver.received) == 1
    assert delivery.last_error == f"redirect to {elsewhere.url} not followed (HTTP 301)"


def test_receiver_slower_than_the_timeout_is_a_failed_attempt(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    receiver.delay = 1.5  # the dispatcher's read timeout is 0.5 s
    team, _, _ = _register(session, receiver.url)
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    assert service.deliver(session, delivery.id, dispatcher) == "pending"
    (attempt,) = _attempts(session, delivery)
    assert attempt.error == "timeout (read)" and attempt.status_code is None
    assert 400 <= attempt.duration_ms < 1500


def test_rotation_signs_with_both_secrets_until_the_overlap_ends(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team, endpoint, old = _register(session, receiver.url)
    _, new = service.rotate_secret(session, team, endpoint.id)
    first = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    service.deliver(session, first.id, dispatcher)
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    endpoint.previous_secrets = [{**old, "expires_at": past} for old in endpoint.previous_secrets]
    second = _delivery(session, service.emit(session, team.id, "job.running", {"id": "y"}))
    service.deliver(session, second.id, dispatcher)
    during, after = receiver.received
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(during.body, during.headers)["type"] == "job.running"
    assert len(after.headers["webhook-signature"].split()) == 1
    assert Webhook(new).verify(after.body, after.headers)["data"] == {"id": "y"}
    with pytest.raises(Exception, match="signature"):
        Webhook(old).verify(after.body, after.headers)


def test_a_jobs_own_webhook_url_is_signed_with_the_team_secret(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team, created = team_row(session)
    job = job_row(session, team, webhook_url=receiver.url)
    event_id = service.emit(session, team.id, "job.succeeded", {"id": job.id}, job=job)
    delivery = _delivery(session, event_id)
    assert (delivery.destination, delivery.job_id) == ("job_url", job.id)
    assert service.deliver(session, delivery.id, dispatcher) == "succeeded"
    (hook,) = receiver.received
    assert Webhook(created.signing_secret).verify(hook.body, hook.headers)["data"]["id"] == job.id


def test_a_batch_is_sent_concurrently_and_recorded_in_bulk(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team, _, secret = _register(session, receiver.url)
    receiver.secrets.append(secret)
    events = [service.emit(session, team.id, "job.running", {"id": i}) for i in range(30)]
    claimed = service.claim_batch(session, limit=100)
    assert sorted(c.event_id for c in claimed) == sorted(events)
    assert service.claim_batch(session, limit=100) == [], "leased rows are not claimed twice"
    service.record_batch(session, claimed, service.send_batch(claimed, dispatcher))
    deliveries = session.scalars(select(WebhookDelivery)).all()
    assert {d.status for d in deliveries} == {"succeeded"}, [d.last_error for d in deliveries]
    assert len(session.scalars(select(WebhookAttempt)).all()) == 30
    assert sorted(h.headers["webhook-id"] for h in receiver.received) == sorted(events)
    assert all(h.verified for h in receiver.received)


def test_a_late_result_after_the_lease_was_lost_does_not_overwrite(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team, _, _ = _register(session, receiver.url)
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    stale = service.claim_batch(session)
    _come_due(session, delivery)  # the lease ran out; another worker takes over
    fresh = service.claim_batch(session)
    service.record_batch(session, fresh, service.send_batch(fresh, dispatcher))
    failure = SendResult(status_code=500, ok=False, duration_ms=1.0, error="HTTP 500")
    service.record_batch(session, stale, [failure])
    session.refresh(delivery)
    assert (delivery.status, delivery.last_status_code) == ("succeeded", 200)
    assert [a.status_code for a in _attempts(session, delivery)] == [200, 500]


def test_a_send_that_found_no_free_connection_is_not_an_attempt(session: Session) -> None:
    team, _, _ = _register(session, "http://127.0.0.1:9/hooks")
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    claimed = service.claim_batch(session)
    busy = SendResult(None, False, 10.0, "timeout waiting for a free connection", deferred=True)
    service.record_batch(session, claimed, [busy])
    session.refresh(delivery)
    assert (delivery.status, delivery.attempts, delivery.lease_token) == ("pending", 0, None)
    assert _attempts(session, delivery) == [] and _wait_seconds(delivery) <= 0


def test_deleting_an_endpoint_gives_up_its_pending_deliveries(
    session: Session, dispatcher: Dispatcher
) -> None:
    team, endpoint, _ = _register(session, "http://127.0.0.1:9/hooks")
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    service.delete_endpoint(session, team, endpoint.id)
    session.refresh(delivery)
    assert (delivery.status, delivery.last_error) == ("failed", "endpoint was deleted")
    assert delivery.destination == "endpoint" and delivery.endpoint_id is None
    with pytest.raises(Conflict, match="deleted"):
        service.redeliver(session, team, delivery.id)


def test_every_attempt_is_counted_in_prometheus(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    def count(outcome: str) -> float:
        sample = REGISTRY.get_sample_value("ftq_webhook_attempts_total", {"outcome": outcome})
        return sample or 0.0

    before = count("500"), count("success")
    receiver.status_code = 500
    team, _, _ = _register(session, receiver.url)
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    service.deliver(session, delivery.id, dispatcher)
    receiver.status_code = 200
    _come_due(session, delivery)
    service.deliver(session, delivery.id, dispatcher)
    assert (count("500"), count("success")) == (before[0] + 1, before[1] + 1)


def test_a_poisoned_retry_after_fails_only_its_own_send_and_the_batch_is_recorded(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    poisoned = WebhookReceiver().start()
    try:
        poisoned.status_code = 503
        poisoned.reply_headers = {"retry-after": "Fri, 31 Dec 99999999999999999999 23:59:59 GMT"}
        team, good_endpoint, _ = _register(session, receiver.url)
        bad_endpoint, _ = service.create_endpoint(
            session, team, WebhookEndpointCreate(url=poisoned.url)
        )
        event_id = service.emit(session, team.id, "job.failed", {"id": "x"})
        claimed = service.claim_batch(session)
        results = service.send_batch(claimed, dispatcher)
        service.record_batch(session, claimed, results)
    finally:
        poisoned.stop()
    by_endpoint = {
        d.endpoint_id: d
        for d in session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
        )
    }
    good, bad = by_endpoint[good_endpoint.id], by_endpoint[bad_endpoint.id]
    assert (good.status, good.attempts) == ("succeeded", 1)
    assert (bad.status, bad.attempts, bad.last_status_code) == ("pending", 1, 503)
    assert 0 < _wait_seconds(bad) <= 24 * 3600, (
        "an unreadable Retry-After falls back to the schedule"
    )


def test_a_send_that_raises_is_that_sends_failed_attempt(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher, monkeypatch: Any
) -> None:
    team, _, _ = _register(session, receiver.url)
    delivery = _delivery(session, service.emit(session, team.id, "job.failed", {"id": "x"}))

    async def broken(*_: object) -> SendResult:
        raise OverflowError("boom")

    monkeypatch.setattr(dispatcher._sender, "_post", broken)
    assert service.deliver(session, delivery.id, dispatcher) == "pending"
    assert delivery.attempts == 1
    assert delivery.last_error == "internal error (OverflowError)"


def test_two_rotations_within_a_day_keep_every_replaced_secret_signing(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team, endpoint, original = _register(session, receiver.url)
    _, second = service.rotate_secret(session, team, endpoint.id)
    _, third = service.rotate_secret(session, team, endpoint.id)
    delivery = _delivery(session, service.emit(session, team.id, "job.running", {"id": "x"}))
    service.deliver(session, delivery.id, dispatcher)
    (received,) = receiver.received
    assert len(received.headers["webhook-signature"].split()) == 3
    for secret in (original, second, third):
        assert Webhook(secret).verify(received.body, received.headers)["data"] == {"id": "x"}


def test_a_rotated_team_secret_signs_job_urls_alongside_the_old_one(
    session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    from ftq.shared.teams import service as teams

    team, created = team_row(session, "rotating-team")
    job = job_row(session, team, webhook_url=receiver.url)
    rotated = teams.rotate_signing_secret(session, team)
    event = service.emit(session, team.id, "job.succeeded", {"job_id": job.id}, job=job)
    service.deliver(session, _delivery(session, event).id, dispatcher)
    (received,) = receiver.received
    for secret in (created.signing_secret, rotated.signing_secret):
        assert Webhook(secret).verify(received.body, received.headers)["type"] == "job.succeeded"
