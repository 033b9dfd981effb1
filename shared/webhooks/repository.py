"""Webhook endpoint, delivery and attempt queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, insert, select, update
from sqlalchemy.orm import Session

from ftq.shared.models import Team, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ftq.shared.pagination import paginate

_deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]


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


def endpoints_by_id(session: Session, ids: Iterable[str]) -> dict[str, WebhookEndpoint]:
    """Endpoints by id (missing ids were deleted)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(wanted)))
    return {row.id: row for row in rows}


def team_secrets(session: Session, team_ids: Iterable[str]) -> dict[str, tuple[str, list[Any]]]:
    """The encrypted signing secret of each team, with its replaced ones still overlapping."""
    wanted = set(team_ids)
    if not wanted:
        return {}
    query = select(Team.id, Team.signing_secret_encrypted, Team.previous_signing_secrets).where(
        Team.id.in_(wanted)
    )
    return {team_id: (secret, list(old or [])) for team_id, secret, old in session.execute(query)}


def claim_due_deliveries(
    session: Session, now: datetime, limit: int, *, first_id: str | None = None
) -> list[WebhookDelivery]:
    """Due pending deliveries, oldest first (`first_id` ahead of the rest), locked, skipping
    rows another worker is claiming."""
    order: list[Any] = [WebhookDelivery.next_attempt_at, WebhookDelivery.id]
    if first_id is not None:
        order.insert(0, case((WebhookDelivery.id == first_id, 0), else_=1))
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def claim_delivery(session: Session, now: datetime, delivery_id: str) -> WebhookDelivery | None:
    """One delivery if it is pending and due, locked."""
    query = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    )
    return session.scalar(query)


def insert_attempts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Log many attempts in one statement."""
    if rows:
        session.execute(insert(WebhookAttempt), list(rows))


def update_leased(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write outcomes of leased deliveries in one statement; a lost lease leaves its row alone.

    Each row has `b_id`, `b_token` and the same set of column values.
    """
    if not rows:
        return
    columns = [key for key in rows[0] if not key.startswith("b_")]
    statement = (
        update(_deliveries)
        .where(_deliveries.c.id == bindparam("b_id"))
        .where(_deliveries.c.lease_token == bindparam("b_token"))
        .values({column: bindparam(column) for column in columns})
    )
    session.execute(statement, list(rows))
    _expire_loaded(session, {row["b_id"] for row in rows})


def _expire_loaded(session: Session, ids: set[str]) -> None:
    """Make loaded delivery objects re-read what the bulk statement wrote."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, WebhookDelivery) and obj.id in ids:
            session.expire(obj)


def fail_pending_for_endpoint(session: Session, endpoint_id: str, reason: str) -> None:
    """Give up every pending delivery of an endpoint."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, lease_token=None, last_error=reason)
        .execution_options(synchronize_session="fetch")
    )


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


def attempts_for(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    """The attempts of some deliveries, oldest first."""
    found: dict[str, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    for attempt in session.scalars(query):
        found[attempt.delivery_id].append(attempt)
    return found


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
