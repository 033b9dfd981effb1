"""Outbox: tasks written in the same transaction as the state change, relayed after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, inspect, or_, select, update
from sqlalchemy.orm import Session

from ftq.shared.models import OutboxMessage
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)

Sender = Callable[[str, Sequence[Any]], None]


_STAGED = "ftq_outbox_staged"
_SENDS_OWN = "ftq_outbox_sends_own"
# A message its committer sends itself is leased to it this long from creation: no other relay
# takes it meanwhile, so the committer sends with no claim and marks it in a later batch. If the
# committer dies first, a relay sends it once the lease has passed.
LEASE = timedelta(seconds=30)
# The sweep leaves a message this young to the process that committed it (it sends it within
# milliseconds of its commit); a relay that died leaves it for the sweep after this.
SWEEP_GRACE = timedelta(seconds=5)


def sends_own(session: Session) -> Session:
    """Lease this session's messages to it: its boundary sends them after commit (`send_leased`)."""
    session.info[_SENDS_OWN] = True
    return session


def enqueue(session: Session, task: str, *args: Any) -> OutboxMessage:
    """Record a task to run once the current transaction commits (inserted at its next flush)."""
    message = OutboxMessage(task=task, args=list(args))
    if session.info.get(_SENDS_OWN):
        message.leased_until = utcnow() + LEASE
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
    (only those created before `older_than`, when given; none still leased to its committer)."""
    unleased = or_(OutboxMessage.leased_until.is_(None), OutboxMessage.leased_until < utcnow())
    query = select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None), unleased)
    if older_than is not None:
        query = query.where(OutboxMessage.created_at < older_than)
    query = query.order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    return list(session.scalars(query))


_OUTBOX = cast(Table, OutboxMessage.__table__)
# Sent: dispatched, its attempt counted, the lease ended (unless a relay took it after the lease).
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _OUTBOX.c.dispatched_at.is_(None))
    .values(
        dispatched_at=bindparam("now"),
        relay_attempts=_OUTBOX.c.relay_attempts + 1,
        leased_until=None,
    )
)
# Not sent (broker down): handed to the sweep at once; only the tried one counts an attempt.
_RELEASE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _OUTBOX.c.dispatched_at.is_(None))
    .values(leased_until=None, relay_attempts=_OUTBOX.c.relay_attempts + bindparam("tried"))
)


@dataclass
class Sends:
    """What a committer's own relay did: ids sent, the one whose send failed, those not tried."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    untried: list[int] = field(default_factory=list)

    def extend(self, other: Sends) -> None:
        """Add another relay's outcome (batched marks)."""
        self.sent += other.sent
        self.failed += other.failed
        self.untried += other.untried

    def __bool__(self) -> bool:
        return bool(self.sent or self.failed or self.untried)


def send_leased(messages: Sequence[OutboxMessage], send: Sender) -> Sends:
    """Send the leased messages a committed transaction enqueued, in order; stop at a failure.

    No database work: no other relay takes a leased row, so `mark` records the outcome later.
    """
    # A message rolled back with its savepoint never committed: it is no longer persistent.
    rows = [m for m in messages if inspect(m).persistent]
    outcome = Sends()
    for done, message in enumerate(rows):
        try:
            send(message.task, message.args)
        except Exception as exc:  # broker down: the rest go to the sweep, unsent
            log.warning("outbox relay paused: %s", type(exc).__name__)
            outcome.failed.append(message.id)
            outcome.untried += [m.id for m in rows[done + 1 :]]
            return outcome
        outcome.sent.append(message.id)
    return outcome


def mark(session: Session, sends: Sends) -> None:
    """Record relays' outcomes: sent rows dispatched, the others released to the sweep."""
    if sends.sent:
        session.execute(_MARK_SENT, {"ids": sends.sent, "now": utcnow()})
    for ids, tried in ((sends.failed, 1), (sends.untried, 0)):
        if ids:
            session.execute(_RELEASE, {"ids": ids, "tried": tried})


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
