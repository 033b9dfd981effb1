"""The outbox keeps work whose enqueue failed until a relay succeeds."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import outbox as outbox_tasks
from ftq.shared.models import OutboxMessage
from ftq.shared.outbox import (
    LEASE,
    SWEEP_GRACE,
    Sends,
    enqueue,
    mark,
    relay,
    send_leased,
    sends_own,
    take_staged,
)
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


def _leased(session: Session, *job_ids: str) -> list[OutboxMessage]:
    """Messages enqueued by a session that sends its own (an API request), flushed."""
    sends_own(session)
    try:
        messages = [enqueue(session, "jobs.submit", job_id) for job_id in job_ids]
    finally:
        session.info.pop("ftq_outbox_sends_own")
    session.flush()
    return messages


def test_a_commit_sends_exactly_its_own_messages_and_marks_them_later(session: Session) -> None:
    relay(session, lambda t, a: None)
    other = enqueue(session, "jobs.schedule", "emulator")  # another request's, not taken
    take_staged(session)
    mine = _leased(session, "ftj_a", "ftj_b")
    staged = take_staged(session)
    assert staged == mine
    sent, send = _sink()
    outcome = send_leased(staged, send)
    assert sent == [("jobs.submit", ["ftj_a"]), ("jobs.submit", ["ftj_b"])]
    assert outcome.sent == [m.id for m in mine] and not outcome.failed

    swept, sweep = _sink()
    assert relay(session, sweep) == 1, "a worker's relay meanwhile takes only the unleased one"
    assert swept == [("jobs.schedule", ["emulator"])]
    mark(session, outcome)
    for message in mine:
        session.refresh(message)
        assert message.dispatched_at is not None and message.relay_attempts == 1
        assert message.leased_until is None
    session.refresh(other)
    assert other.relay_attempts == 1
    assert relay(session, sweep) == 0, "sent once: never a twin"


def test_a_message_rolled_back_with_its_savepoint_is_never_sent(session: Session) -> None:
    nested = session.begin_nested()
    _leased(session, "ftj_gone")
    nested.rollback()
    kept = _leased(session, "ftj_kept")[0]
    sent, send = _sink()
    outcome = send_leased(take_staged(session), send)
    assert sent == [("jobs.submit", ["ftj_kept"])] and outcome.sent == [kept.id]


def test_a_failed_send_hands_the_rest_to_the_sweep_at_once(session: Session) -> None:
    relay(session, lambda t, a: None)
    staged = _leased(session, "ftj_0", "ftj_1", "ftj_2")
    take_staged(session)
    ids = [message.id for message in staged]
    sent: list[str] = []

    def broken(task: str, args: Sequence[Any]) -> None:
        if sent:
            raise ConnectionError("redis down")
        sent.append(args[0])

    outcome = send_leased(staged, broken)
    mark(session, outcome)
    rows = select(OutboxMessage.id, OutboxMessage.relay_attempts, OutboxMessage.dispatched_at)
    found = {row[0]: row[1:] for row in session.execute(rows.where(OutboxMessage.id.in_(ids)))}
    # Sent once; tried once and put back; never tried (the sweep's attempt will be its first).
    assert [(found[i][0], found[i][1] is not None) for i in ids] == [
        (1, True),
        (1, False),
        (0, False),
    ]
    swept, send = _sink()
    assert relay(session, send) == 2, "released: no wait for the lease"
    assert [args[0] for _, args in swept] == ["ftj_1", "ftj_2"]


def test_a_lease_whose_committer_died_is_sent_once_it_has_passed(session: Session) -> None:
    relay(session, lambda t, a: None)
    orphan = _leased(session, "ftj_orphan")[0]  # committed, then the process died unsent
    sent, send = _sink()
    assert relay(session, send) == 0
    assert _past_lease(session, orphan, send) == 1
    assert sent == [("jobs.submit", ["ftj_orphan"])]


def _past_lease(session: Session, message: OutboxMessage, send: Any) -> int:
    """What the sweep sends once the message's lease and grace have passed."""
    message.created_at = utcnow() - LEASE - SWEEP_GRACE
    message.leased_until = utcnow() - SWEEP_GRACE
    session.flush()
    return relay(session, send, older_than=utcnow() - SWEEP_GRACE)


def test_marks_are_written_in_one_batch_by_the_marks_thread(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay(session, lambda t, a: None)
    first, second = _leased(session, "ftj_1"), _leased(session, "ftj_2")
    written: list[Sends] = []

    @contextmanager
    def test_scope() -> Iterator[Session]:
        yield session

    def recording_mark(s: Session, sends: Sends) -> None:
        mark(s, sends)
        written.append(sends)  # after the write: the test reads the session only then

    monkeypatch.setattr(outbox_tasks, "session_scope", test_scope)
    monkeypatch.setattr(outbox_tasks, "mark", recording_mark)
    marks = outbox_tasks.DispatchMarks(delay=0.2)
    marks.add(send_leased(first, lambda t, a: None))
    marks.add(send_leased(second, lambda t, a: None))
    deadline = time.monotonic() + 10
    while not written and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [w.sent for w in written] == [[first[0].id, second[0].id]], "one UPDATE for both"
    session.refresh(first[0])
    assert first[0].dispatched_at is not None


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


def test_a_batch_the_database_refused_is_written_on_the_next_try(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay(session, lambda t, a: None)
    message = _leased(session, "ftj_retry")[0]
    tries: list[list[int]] = []

    @contextmanager
    def test_scope() -> Iterator[Session]:
        yield session

    def flaky_mark(s: Session, sends: Sends) -> None:
        if not tries:
            tries.append(list(sends.sent))
            raise ConnectionError("database restarting")
        mark(s, sends)
        tries.append(list(sends.sent))  # after the write: the test reads the session only then

    monkeypatch.setattr(outbox_tasks, "session_scope", test_scope)
    monkeypatch.setattr(outbox_tasks, "mark", flaky_mark)
    monkeypatch.setattr(outbox_tasks, "RETRY_SECONDS", 0.05)
    marks = outbox_tasks.DispatchMarks(delay=0.01)
    marks.add(send_leased([message], lambda t, a: None))
    deadline = time.monotonic() + 10
    while len(tries) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tries == [[message.id], [message.id]], "refused once, then written with no new send"
    session.refresh(message)
    assert message.dispatched_at is not None
