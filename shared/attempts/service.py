"""Count task deliveries in the database; refuse a message that keeps killing its worker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy.orm import Session

from ftq.shared.attempts import repository
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)
CRASH_LOOP_CODE = "worker_crash_loop"
KEEP_COUNTERS = timedelta(days=7)

Failer = Callable[[Session, str, str, str], object]


def start(session: Session, delivery: str, task: str) -> int:
    """Record that a message starts now; how many times it has started without finishing."""
    return repository.bump(session, delivery, task, utcnow())


def finish(session: Session, delivery: str) -> None:
    """The message ran to an end (success, error or retry): stop counting it."""
    repository.forget(session, delivery)


def purge_stale(session: Session) -> int:
    """Drop counters untouched for a week (refused or abandoned messages); how many."""
    return repository.delete_started_before(session, utcnow() - KEEP_COUNTERS)


def refuse(
    session: Session,
    task: str,
    args: tuple[object, ...],
    attempts: int,
    failers: Mapping[str, tuple[str, Failer]],
) -> None:
    """Give up on a poison message: fail what it names, found by id prefix in `failers`."""
    subject = str(args[0]) if args else ""
    log.error("refusing %s(%s) after %d deliveries that never finished", task, subject, attempts)
    found = failers.get(subject.partition("_")[0]) if "_" in subject else None
    if found is None:
        return
    noun, fail = found
    fail(
        session,
        subject,
        CRASH_LOOP_CODE,
        f"ftq stopped after the worker running {task} for this {noun} died {attempts - 1} "
        "times in a row; the operators were alerted by the logs and metrics",
    )
