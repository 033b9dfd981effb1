"""Webhook endpoint, delivery and attempt queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from shared.pagination import paginate


def endpoints_for_team(session: Session, team_id: str) -> list[WebhookEndpoint]:
    """Every endpoint of a team."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.team_id == team_id)
    return list(session.scalars(query))


def get_endpoint(session: Session, team_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    """A team's endpoint by id."""
    return session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.team_id == team_id
        )
    )


def list_endpoints(
    session: Session, team_id: str, *, limit: int, after: str | None
) -> tuple[list[WebhookEndpoint], bool]:
    """A page of a team's endpoints."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.team_id == team_id)
    return paginate(session, query, WebhookEndpoint.id, limit=limit, after=after)


def lock_delivery(session: Session, delivery_id: str) -> WebhookDelivery | None:
    """A delivery row locked for the attempt (a second worker skips it)."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update(skip_locked=True)
    )
    return session.scalar(query)


def claim_due_deliveries(session: Session, now: datetime, limit: int) -> list[WebhookDelivery]:
    """Pending deliveries whose next attempt is due."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def list_deliveries(
    session: Session,
    team_id: str,
    *,
    job_id: str | None,
    endpoint_id: str | None,
    status: str | None,
    limit: int,
    after: str | None,
) -> tuple[list[WebhookDelivery], bool]:
    """A filtered page of a team's deliveries."""
    query = select(WebhookDelivery).where(WebhookDelivery.team_id == team_id)
    if job_id:
        query = query.where(WebhookDelivery.job_id == job_id)
    if endpoint_id:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return paginate(session, query, WebhookDelivery.id, limit=limit, after=after)


def get_delivery(session: Session, team_id: str, delivery_id: str) -> WebhookDelivery | None:
    """A team's delivery by id."""
    return session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.team_id == team_id
        )
    )


def add(session: Session, *objects: WebhookEndpoint | WebhookDelivery | WebhookAttempt) -> None:
    """Stage new rows and flush."""
    session.add_all(objects)
    session.flush()
