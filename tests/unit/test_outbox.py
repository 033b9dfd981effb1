"""The outbox keeps work whose enqueue failed until a relay succeeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.models import OutboxMessage
from ftq.shared.outbox import SWEEP_GRACE, enqueue, relay, relay_committed, take_staged
from ftq.shared.timeutil import utcnow


def test_broker_failure_leaves_messages_for_the_next_relay(session: Session) -> None:
    relay(session, lambda t, a: None)  # rows other tests left behind (rolled back after this test)
    for i in range(3):
        enqueue(session, "jobs.submit", f"ftj_{i}")
    sent: list[tuple[str, list[Any]]] = []

    def broken(task: str, args: Sequence[Any]) -> None:
        if len(sent) == 1:
            raise ConnectionError("redis down")
        sent.append((task, list(args)))

    assert relay(session, broken) == 1
    assert relay(session, lambda t, a: sent.append((t, list(a)))) == 2
    assert [args[0] for _, args in sent] == ["ftj_0", "ftj_1", "ftj_2"]
    assert relay(session, lambda t, a: sent.append((t, list(a)))) == 0


def _sink() -> tuple[list[tuple[str, list[Any]]], Any]:
    sent: list[tuple[str, list[Any]]] = []
    return sent, lambda task, args: sent.append((task, list(args)))


def test_a_commit_relays_exactly_its_own_messages_and_marks_them(session: Session) -> None:
    relay(session, lambda t, a: None)
    other = enqueue(session, "jobs.schedule", "emulator")  # another request's, not taken
    take_staged(session)
    mine = [enqueue(session, "jobs.submit", "ftj_a"), enqueue(session, "jobs.submit", "ftj_b")]
    staged = take_staged(session)
    assert staged == mine
    session.flush()
    sent, send = _sink()
    assert relay_committed(session, staged, send) == 2
    assert sent == [("jobs.submit", ["ftj_a"]), ("jobs.submit", ["ftj_b"])]
    for message in mine:
        session.refresh(message)
        assert message.dispatched_at is not None and message.relay_attempts == 1
    session.refresh(other)
    assert other.dispatched_at is None
    assert relay_committed(session, staged, send) == 0, "sent once: never a twin"
    assert len(sent) == 2


def test_a_message_rolled_back_with_its_savepoint_is_never_sent(session: Session) -> None:
    nested = session.begin_nested()
    enqueue(session, "jobs.submit", "ftj_gone")
    session.flush()
    nested.rollback()
    kept = enqueue(session, "jobs.submit", "ftj_kept")
    session.flush()
    sent, send = _sink()
    assert relay_committed(session, take_staged(session), send) == 1
    assert sent == [("jobs.submit", ["ftj_kept"])]
    session.refresh(kept)
    assert kept.dispatched_at is not None


def test_a_failed_send_leaves_the_rest_for_the_sweep(session: Session) -> None:
    relay(session, lambda t, a: None)
    for i in range(3):
        enqueue(session, "jobs.submit", f"ftj_{i}")
    staged = take_staged(session)
    session.flush()
    ids = [message.id for message in staged]
    sent: list[str] = []

    def broken(task: str, args: Sequence[Any]) -> None:
        if sent:
            raise ConnectionError("redis down")
        sent.append(args[0])

    assert relay_committed(session, staged, broken) == 1
    rows = select(OutboxMessage.id, OutboxMessage.relay_attempts, OutboxMessage.dispatched_at)
    found = {row[0]: row[1:] for row in session.execute(rows.where(OutboxMessage.id.in_(ids)))}
    # Sent once; tried once and put back; never tried (the sweep's attempt will be its first).
    assert [(found[i][0], found[i][1] is not None) for i in ids] == [
        (1, True),
        (1, False),
        (0, False),
    ]
    swept, send = _sink()
    assert relay(session, send) == 2
    assert [args[0] for _, args in swept] == ["ftj_1", "ftj_2"]


def test_the_sweep_leaves_young_messages_to_their_committer(session: Session) -> None:
    relay(session, lambda t, a: None)
    young = enqueue(session, "jobs.submit", "ftj_young")
    session.flush()
    sent, send = _sink()
    assert relay(session, send, older_than=utcnow() - SWEEP_GRACE) == 0
    young.created_at = utcnow() - 2 * SWEEP_GRACE  # its committer died before relaying it
    session.flush()
    assert relay(session, send, older_than=utcnow() - SWEEP_GRACE) == 1
    assert sent == [("jobs.submit", ["ftj_young"])]
