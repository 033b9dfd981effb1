"""Outbox: tasks written in the same transaction as the state change, relayed after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.models import OutboxMessage
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)

Sender = Callable[[str, Sequence[Any]], None]


def enqueue(session: Session, task: str, *args: Any) -> OutboxMessage:
    """Record a task to run once the current transaction commits."""
    message = OutboxMessage(task=task, args=list(args))
    session.add(message)
    session.flush()
    return message


def claim_pending(session: Session, limit: int = 200) -> list[OutboxMessage]:
    """Undispatched messages, oldest first, locked so two relays never send the same row."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def relay(session: Session, send: Sender, limit: int = 200) -> int:
    """Send pending messages and mark them dispatched; stop at the first broker failure."""
    sent = 0
    for message in claim_pending(session, limit):
        message.relay_attempts += 1
        try:
            send(message.task, message.args)
        except Exception as exc:  # broker down: leave the rest for the sweep
            log.warning("outbox relay paused: %s", type(exc).__name__)
            break
        message.dispatched_at = utcnow()
        sent += 1
    session.flush()
    return sent
