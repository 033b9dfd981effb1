"""Webhooks: team endpoints, event emission into deliveries, signed delivery with retries."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from shared.errors import NotFound
from shared.ids import new_id
from shared.models import Job, Team, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from shared.outbox import enqueue
from shared.security import decrypt, encrypt
from shared.settings import get_settings
from shared.timeutil import as_utc, utcnow
from shared.webhooks import repository
from shared.webhooks.schedule import next_delay
from shared.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from shared.webhooks.signing import build_headers, generate_secret
from shared.webhooks.ssrf import check_url
from shared.webhooks.transport import SendResult, WebhookSender

log = logging.getLogger(__name__)

ROTATION_OVERLAP = timedelta(hours=24)
CLAIM_LEASE = timedelta(seconds=60)


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
    for field, value in changes.items():
        if value is not None or field == "description":
            setattr(endpoint, field, list(value) if field == "events" else value)
    if changes.get("disabled") is False:
        endpoint.disabled_reason = None
    session.flush()
    return endpoint


def delete_endpoint(session: Session, team: Team, endpoint_id: str) -> None:
    """Remove an endpoint; its delivery log stays."""
    session.delete(get_endpoint(session, team, endpoint_id))
    session.flush()


def rotate_secret(session: Session, team: Team, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    """A new secret; the old one keeps signing alongside it for a day."""
    endpoint = get_endpoint(session, team, endpoint_id)
    secret = generate_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires_at = utcnow() + ROTATION_OVERLAP
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
            job_id=job.id if job else data.get("job_id"),
            url=url,
            payload=body,
            status="pending",
            next_attempt_at=now + CLAIM_LEASE,
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


def _signing_secrets(session: Session, delivery: WebhookDelivery) -> list[str]:
    if delivery.endpoint_id is None:
        team = session.get(Team, delivery.team_id)
        return [decrypt(team.signing_secret_encrypted)] if team else []
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None:
        return []
    secrets = [decrypt(endpoint.secret_encrypted)]
    expires = as_utc(endpoint.previous_secret_expires_at)
    if endpoint.previous_secret_encrypted and expires and expires > utcnow():
        secrets.append(decrypt(endpoint.previous_secret_encrypted))
    return secrets


@lru_cache
def get_sender() -> WebhookSender:
    """The process-wide pooled, SSRF-safe sender."""
    settings = get_settings()
    return WebhookSender(
        timeout=settings.webhook_timeout_seconds,
        allow_hosts=settings.webhook_allow_hosts,
        require_https=settings.environment == "production",
    )


def deliver(session: Session, delivery_id: str, sender: WebhookSender | None = None) -> str | None:
    """Attempt one delivery now; record the attempt and schedule the next one if it failed."""
    delivery = repository.lock_delivery(session, delivery_id)
    if delivery is None or delivery.status != "pending":
        return delivery.status if delivery else None
    secrets = _signing_secrets(session, delivery)
    if not secrets:
        _give_up(delivery, "destination was deleted")
        session.flush()
        return delivery.status
    body = delivery.payload.encode()
    headers = build_headers(delivery.event_id, int(utcnow().timestamp()), body, secrets)
    result = (sender or get_sender()).send(delivery.url, body, headers)
    _record(session, delivery, result)
    return delivery.status


def _record(session: Session, delivery: WebhookDelivery, result: SendResult) -> None:
    repository.add(
        session,
        WebhookAttempt(
            delivery_id=delivery.id,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            error=result.error,
            response_snippet=(result.response_snippet or "")[:500] or None,
        ),
    )
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    if result.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            "succeeded",
            utcnow(),
            None,
        )
    elif result.gone:
        _disable_endpoint(session, delivery)
        _give_up(delivery, "endpoint answered 410 Gone and was disabled")
    else:
        delay = next_delay(delivery.attempts, result.retry_after_seconds)
        if delay is None:
            _give_up(delivery, result.error or f"HTTP {result.status_code}")
        else:
            delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    session.flush()


def _give_up(delivery: WebhookDelivery, reason: str) -> None:
    delivery.status = "failed"
    delivery.next_attempt_at = None
    delivery.last_error = reason


def _disable_endpoint(session: Session, delivery: WebhookDelivery) -> None:
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
    if endpoint is not None:
        endpoint.disabled = True
        endpoint.disabled_reason = "410 Gone"


def claim_due(session: Session, limit: int = 500) -> list[str]:
    """Pending deliveries whose retry time has come, leased so no other sweep takes them."""
    now = utcnow()
    due = repository.claim_due_deliveries(session, now, limit)
    for delivery in due:
        delivery.next_attempt_at = now + CLAIM_LEASE
    session.flush()
    return [d.id for d in due]


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


def redeliver(session: Session, team: Team, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again with the same webhook-id and body."""
    delivery = repository.get_delivery(session, team.id, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}", param="id")
    delivery.status = "pending"
    delivery.next_attempt_at = utcnow() + CLAIM_LEASE
    session.flush()
    enqueue(session, "webhooks.deliver", delivery.id)
    return delivery
