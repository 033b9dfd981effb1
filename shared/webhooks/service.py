"""Webhooks: team endpoints, event emission into deliveries, signed delivery with retries."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ftq.shared.errors import Conflict, NotFound
from ftq.shared.ids import new_id
from ftq.shared.models import Job, Team, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ftq.shared.observability.metrics import record_webhook_attempt
from ftq.shared.outbox import enqueue
from ftq.shared.security import after_rotation, encrypt, signing_secrets
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc, utcnow
from ftq.shared.webhooks import repository
from ftq.shared.webhooks.dispatcher import Dispatcher, Outgoing, get_dispatcher
from ftq.shared.webhooks.schedule import next_delay
from ftq.shared.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from ftq.shared.webhooks.signing import build_headers, generate_secret
from ftq.shared.webhooks.ssrf import check_url
from ftq.shared.webhooks.transport import SendResult

log = logging.getLogger(__name__)

BATCH_SIZE = 200
ENDPOINT = "endpoint"
JOB_URL = "job_url"


def check_destination(url: str) -> None:
    """Refuse URLs that are not http(s) or that resolve into our own network."""
    settings = get_settings()
    check_url(
        url,
        allow_hosts=settings.webhook_allow_hosts,
        require_https=settings.environment == "production",
    )


def create_endpoint(
    session: Session, team: Team, data: WebhookEndpointCreate
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; its secret is returned once."""
    check_destination(data.url)
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        id=new_id("we"),
        team_id=team.id,
        url=data.url,
        events=list(data.events),
        description=data.description,
        disabled=data.disabled,
        secret_encrypted=encrypt(secret),
    )
    repository.add(session, endpoint)
    return endpoint, secret


def get_endpoint(session: Session, team: Team, endpoint_id: str) -> WebhookEndpoint:
    """A team's endpoint, or 404."""
    endpoint = repository.get_endpoint(session, team.id, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}", param="id")
    return endpoint


def list_endpoints(
    session: Session, team: Team, *, limit: int, after: str | None
) -> tuple[list[WebhookEndpoint], bool]:
    """A page of the team's endpoints."""
    return repository.list_endpoints(session, team.id, limit=limit, after=after)


def update_endpoint(
    session: Session, team: Team, endpoint_id: str, data: WebhookEndpointUpdate
) -> WebhookEndpoint:
    """Change an endpoint's URL, subscriptions, description or enabled state."""
    endpoint = get_endpoint(session, team, endpoint_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("url"):
        check_destination(changes["url"])
    for name, value in changes.items():
        if value is not None or name == "description":
            setattr(endpoint, name, list(value) if name == "events" else value)
    if changes.get("disabled") is False:
        endpoint.disabled_reason = None
    session.flush()
    return endpoint


def delete_endpoint(session: Session, team: Team, endpoint_id: str) -> None:
    """Remove an endpoint; its delivery log stays, its pending deliveries give up."""
    endpoint = get_endpoint(session, team, endpoint_id)
    repository.fail_pending_for_endpoint(session, endpoint.id, "endpoint was deleted")
    session.delete(endpoint)
    session.flush()


def rotate_secret(session: Session, team: Team, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one keeps signing alongside it for a day."""
    endpoint = get_endpoint(session, team, endpoint_id)
    secret = generate_secret()
    endpoint.previous_secrets = after_rotation(
        endpoint.secret_encrypted, list(endpoint.previous_secrets), utcnow()
    )
    endpoint.secret_encrypted = encrypt(secret)
    session.flush()
    return endpoint, secret


def emit(
    session: Session,
    team_id: str,
    event_type: str,
    data: dict[str, Any],
    job: Job | None = None,
) -> str:
    """Create one event and a delivery per subscribed destination, each sent after commit."""
    event_id = new_id("evt")
    now = utcnow()
    body = json.dumps(
        {"type": event_type, "timestamp": now.isoformat(), "data": data},
        separators=(",", ":"),
        default=str,
    )
    for endpoint_id, url in _destinations(session, team_id, event_type, job):
        delivery = WebhookDelivery(
            id=new_id("whd"),
            event_id=event_id,
            event_type=event_type,
            team_id=team_id,
            endpoint_id=endpoint_id,
            destination=ENDPOINT if endpoint_id else JOB_URL,
            job_id=job.id if job else data.get("job_id"),
            url=url,
            payload=body,
            status="pending",
            next_attempt_at=now,
        )
        repository.add(session, delivery)
        enqueue(session, "webhooks.deliver", delivery.id)
    return event_id


def _destinations(
    session: Session, team_id: str, event_type: str, job: Job | None
) -> list[tuple[str | None, str]]:
    targets: list[tuple[str | None, str]] = [
        (endpoint.id, endpoint.url)
        for endpoint in repository.endpoints_for_team(session, team_id)
        if not endpoint.disabled and (not endpoint.events or event_type in endpoint.events)
    ]
    if job is not None and job.webhook_url:
        targets.append((None, job.webhook_url))
    return targets


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this worker, with what it takes to sign and send it."""

    id: str
    event_id: str
    url: str
    payload: bytes
    endpoint_id: str | None
    attempt: int
    lease_token: str
    secrets: tuple[str, ...] = field(repr=False)


def claim_batch(
    session: Session, *, limit: int = BATCH_SIZE, first_id: str | None = None
) -> list[Claimed]:
    """Lease up to `limit` due deliveries (`first_id` first) so no other worker sends them."""
    rows = repository.claim_due_deliveries(session, utcnow(), limit, first_id=first_id)
    return _lease(session, rows)


def _lease(session: Session, rows: Sequence[WebhookDelivery]) -> list[Claimed]:
    now, token = utcnow(), uuid.uuid4().hex
    lease_until = now + timedelta(seconds=get_settings().webhook_lease_seconds)
    book = _SecretBook(session, rows)
    claimed = []
    for delivery in rows:
        secrets = book.secrets_for(delivery)
        if isinstance(secrets, str):
            _give_up(delivery, secrets)
            continue
        delivery.url = book.url_for(delivery)
        delivery.next_attempt_at, delivery.lease_token = lease_until, token
        claimed.append(_claimed(delivery, secrets, token))
    session.flush()
    return claimed


def _claimed(delivery: WebhookDelivery, secrets: tuple[str, ...], token: str) -> Claimed:
    return Claimed(
        id=delivery.id,
        event_id=delivery.event_id,
        url=delivery.url,
        payload=delivery.payload.encode(),
        endpoint_id=delivery.endpoint_id,
        attempt=delivery.attempts + 1,
        lease_token=token,
        secrets=secrets,
    )


class _SecretBook:
    """Signing secrets and current URLs of a batch's destinations, loaded and decrypted once."""

    def __init__(self, session: Session, rows: Sequence[WebhookDelivery]) -> None:
        self.endpoints = repository.endpoints_by_id(
            session, {d.endpoint_id for d in rows if d.endpoint_id}
        )
        self.teams = repository.team_secrets(
            session, {d.team_id for d in rows if d.destination == JOB_URL}
        )
        self.cache: dict[str, tuple[str, ...]] = {}

    def secrets_for(self, delivery: WebhookDelivery) -> tuple[str, ...] | str:
        """The secrets to sign with, or why the delivery cannot be sent any more."""
        if delivery.destination == JOB_URL:
            team = self.teams.get(delivery.team_id)
            return self._decrypted(delivery.team_id, *team) if team else "team deleted"
        endpoint = self.endpoints.get(delivery.endpoint_id or "")
        if endpoint is None:
            return "endpoint was deleted"
        if endpoint.disabled:
            return f"endpoint is disabled ({endpoint.disabled_reason or 'by the team'})"
        if endpoint.id not in self.cache:
            self.cache[endpoint.id] = _endpoint_secrets(endpoint)
        return self.cache[endpoint.id]

    def url_for(self, delivery: WebhookDelivery) -> str:
        """An endpoint's current URL (a changed URL applies to retries); a job's own URL."""
        endpoint = self.endpoints.get(delivery.endpoint_id or "")
        return endpoint.url if endpoint is not None else delivery.url

    def _decrypted(self, key: str, encrypted: str, previous: list[Any]) -> tuple[str, ...]:
        if key not in self.cache:
            self.cache[key] = signing_secrets(encrypted, previous, utcnow())
        return self.cache[key]


def _endpoint_secrets(endpoint: WebhookEndpoint) -> tuple[str, ...]:
    """The current secret, plus the replaced ones still in their rotation overlap."""
    return signing_secrets(endpoint.secret_encrypted, list(endpoint.previous_secrets), utcnow())


def send_batch(
    claimed: Sequence[Claimed], dispatcher: Dispatcher | None = None
) -> list[SendResult]:
    """Sign and send every claimed delivery concurrently; no database access."""
    timestamp = int(time.time())
    requests = [
        Outgoing(c.url, c.payload, build_headers(c.event_id, timestamp, c.payload, c.secrets))
        for c in claimed
    ]
    return (dispatcher or get_dispatcher()).send_many(requests)


def record_batch(
    session: Session, claimed: Sequence[Claimed], results: Sequence[SendResult]
) -> None:
    """Log every attempt and write each delivery's next state, in bulk."""
    now = utcnow()
    attempts, outcomes, released = [], [], []
    gone: set[str] = set()
    for item, result in zip(claimed, results, strict=True):
        if result.deferred:
            released.append(_release_row(item, now))
            continue
        record_webhook_attempt(_outcome(result), result.duration_ms / 1000)
        attempts.append(_attempt_row(item, result, now))
        outcomes.append(_outcome_row(item, result, now))
        if result.gone and item.endpoint_id:
            gone.add(item.endpoint_id)
    repository.insert_attempts(session, attempts)
    repository.update_leased(session, outcomes)
    repository.update_leased(session, released)
    _disable_gone(session, gone)
    session.flush()


def _release_row(item: Claimed, now: datetime) -> dict[str, Any]:
    """A send that never started: due again at once, no attempt counted."""
    return {
        "b_id": item.id,
        "b_token": item.lease_token,
        "next_attempt_at": now,
        "lease_token": None,
    }


def _attempt_row(item: Claimed, result: SendResult, now: datetime) -> dict[str, Any]:
    return {
        "delivery_id": item.id,
        "attempt": item.attempt,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "error": result.error,
        "response_snippet": result.response_snippet[:500] or None,
        "created_at": now,
    }


def _outcome_row(item: Claimed, result: SendResult, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "b_id": item.id,
        "b_token": item.lease_token,
        "attempts": item.attempt,
        "last_status_code": result.status_code,
        "last_error": result.error,
        "lease_token": None,
        "status": "pending",
        "next_attempt_at": None,
        "delivered_at": None,
    }
    if result.ok:
        row.update(status="succeeded", delivered_at=now)
    elif result.gone and item.endpoint_id:
        row.update(status="failed", last_error="endpoint answered 410 Gone and was disabled")
    else:
        scale = get_settings().webhook_retry_scale
        delay = next_delay(item.attempt, result.retry_after_seconds, scale=scale)
        if delay is None:
            row.update(status="failed")
        else:
            row.update(next_attempt_at=now + timedelta(seconds=delay))
    return row


def _outcome(result: SendResult) -> str:
    """A bounded label for the attempt metric."""
    if result.ok:
        return "success"
    if result.status_code is not None:
        return str(result.status_code)
    error = result.error or ""
    for prefix, label in (("timeout", "timeout"), ("refused:", "refused"), ("dns", "dns_error")):
        if error.startswith(prefix):
            return label
    return "tls_error" if error.startswith("tls") else "connection_error"


def _disable_gone(session: Session, endpoint_ids: set[str]) -> None:
    for endpoint in repository.endpoints_by_id(session, endpoint_ids).values():
        endpoint.disabled, endpoint.disabled_reason = True, "410 Gone"
        log.warning("webhook endpoint %s answered 410 Gone and was disabled", endpoint.id)


def deliver(session: Session, delivery_id: str, dispatcher: Dispatcher | None = None) -> str | None:
    """Attempt one delivery now if it is due; its status afterwards (None if unknown)."""
    row = repository.claim_delivery(session, utcnow(), delivery_id)
    claimed = _lease(session, [row]) if row is not None else []
    if claimed:
        record_batch(session, claimed, send_batch(claimed, dispatcher))
    delivery = session.get(WebhookDelivery, delivery_id)
    return delivery.status if delivery else None


def fail_by_id(session: Session, delivery_id: str, code: str, message: str) -> None:
    """Give up on a delivery whose sends keep killing the worker; a finished one stays as is."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending":
        return
    _give_up(delivery, f"{code}: {message}"[:1000])
    session.flush()


def _give_up(delivery: WebhookDelivery, reason: str) -> None:
    delivery.status = "failed"
    delivery.next_attempt_at = None
    delivery.lease_token = None
    delivery.last_error = reason


def list_deliveries(
    session: Session,
    team: Team,
    *,
    job_id: str | None,
    endpoint_id: str | None,
    status: str | None,
    limit: int,
    after: str | None,
) -> tuple[list[WebhookDelivery], bool]:
    """A filtered page of the team's deliveries."""
    return repository.list_deliveries(
        session,
        team.id,
        job_id=job_id,
        endpoint_id=endpoint_id,
        status=status,
        limit=limit,
        after=after,
    )


def attempt_log(
    session: Session, deliveries: Sequence[WebhookDelivery]
) -> dict[str, list[WebhookAttempt]]:
    """Every attempt of some deliveries, oldest first."""
    return repository.attempts_for(session, [d.id for d in deliveries])


def get_delivery(session: Session, team: Team, delivery_id: str) -> WebhookDelivery:
    """A team's delivery, or 404."""
    delivery = repository.get_delivery(session, team.id, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}", param="id")
    return delivery


def redeliver(session: Session, team: Team, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again now, with the same webhook-id and body."""
    delivery = get_delivery(session, team, delivery_id)
    _check_replayable(session, delivery)
    if _in_flight(delivery):
        return delivery
    delivery.status, delivery.next_attempt_at, delivery.lease_token = "pending", utcnow(), None
    session.flush()
    enqueue(session, "webhooks.deliver", delivery.id)
    return delivery


def _check_replayable(session: Session, delivery: WebhookDelivery) -> None:
    if delivery.destination != ENDPOINT:
        return
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
    if endpoint is None:
        raise Conflict("the endpoint of this delivery was deleted", code="endpoint_deleted")
    if endpoint.disabled:
        raise Conflict(
            f"endpoint {endpoint.id} is disabled; enable it before redelivering",
            code="endpoint_disabled",
        )


def _in_flight(delivery: WebhookDelivery) -> bool:
    """A worker holds the delivery right now (its lease has not run out)."""
    lease_end = as_utc(delivery.next_attempt_at)
    return bool(delivery.lease_token and lease_end and lease_end > utcnow())
