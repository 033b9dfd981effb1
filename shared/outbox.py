"""Outbox: tasks written in the same transaction as the state change, relayed after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, event, inspect, select, update
from sqlalchemy.orm import Session

from ftq.shared.models import OutboxMessage
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)

Sender = Callable[[str, Sequence[Any]], None]


_STAGED = "ftq_outbox_staged"
# The sweep leaves a message this young to the process that committed it (it sends it within
# milliseconds of its commit); a relay that died leaves it for the sweep after this.
SWEEP_GRACE = timedelta(seconds=5)


def enqueue(session: Session, task: str, *args: Any) -> OutboxMessage:
    """Record a task to run once the current transaction commits (inserted at its next flush)."""
    message = OutboxMessage(task=task, args=list(args))
    session.add(message)
    session.info.setdefault(_STAGED, []).append(message)
    return message


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_staged(session: Session) -> None:
    # A caller that relays by claiming (a worker) never takes them: keep no references around.
    session.info.pop(_STAGED, None)


def take_staged(session: Session) -> list[OutboxMessage]:
    """The messages this session enqueued since the last call; take them just before commit."""
    return list(session.info.pop(_STAGED, []))


def claim_pending(
    session: Session, limit: int = 200, older_than: datetime | None = None
) -> list[OutboxMessage]:
    """Undispatched messages, oldest first, locked so two relays never send the same row
    (only those created before `older_than`, when given)."""
    query = select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))
    if older_than is not None:
        query = query.where(OutboxMessage.created_at < older_than)
    query = query.order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(query))


_OUTBOX = cast(Table, OutboxMessage.__table__)
# Claim and mark in one statement: the rows stay locked until the relay's commit, so a worker
# relaying every pending row skips them; a failed send puts the rest back before that commit.
_CLAIM_OWN = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(
            select(_OUTBOX.c.id)
            .where(
                _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
                _OUTBOX.c.dispatched_at.is_(None),
            )
            .with_for_update(skip_locked=True)
        )
    )
    .values(dispatched_at=bindparam("now"), relay_attempts=_OUTBOX.c.relay_attempts + 1)
    .returning(_OUTBOX.c.id, _OUTBOX.c.task, _OUTBOX.c.args)
)
# Put back the rows from the one whose send failed on: only that one keeps its attempt.
_UNCLAIM = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        dispatched_at=None,
        relay_attempts=_OUTBOX.c.relay_attempts
        - case((_OUTBOX.c.id == bindparam("tried"), 0), else_=1),
    )
)


def relay_committed(session: Session, messages: Sequence[OutboxMessage], send: Sender) -> int:
    """Send the messages a committed transaction enqueued, claimed like any relay's (a worker
    relaying every pending row never sends one of them too), without scanning the others."""
    # A message rolled back with its savepoint never committed: it is no longer persistent.
    ids = [m.id for m in messages if inspect(m).persistent]
    if not ids:
        return 0
    claimed = sorted(session.execute(_CLAIM_OWN, {"ids": ids, "now": utcnow()}).all())
    for sent, (_id, task, args) in enumerate(claimed):
        try:
            send(task, args)
        except Exception as exc:  # broker down: the rest wait for the sweep, unsent
            log.warning("outbox relay paused: %s", type(exc).__name__)
            unsent = [row[0] for row in claimed[sent:]]
            session.execute(_UNCLAIM, {"ids": unsent, "tried": unsent[0]})
            return sent
    return len(claimed)


def relay(
    session: Session, send: Sender, limit: int = 200, older_than: datetime | None = None
) -> int:
    """Send pending messages and mark them dispatched; stop at the first broker failure."""
    sent = 0
    for message in claim_pending(session, limit, older_than):
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
