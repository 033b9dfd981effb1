"""Count task deliveries in the database; refuse a message that keeps killing its worker."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from shared.attempts import repository
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
CRASH_LOOP_CODE = "worker_crash_loop"


def start(session: Session, delivery: str, task: str) -> int:
    """Record that a message starts now; how many times it has started without finishing."""
    return repository.bump(session, delivery, task, utcnow())


def finish(session: Session, delivery: str) -> None:
    """The message ran to an end (success, error or retry): stop counting it."""
    repository.forget(session, delivery)


def refuse(session: Session, task: str, args: tuple[object, ...], attempts: int) -> None:
    """Give up on a poison message: fail the job it names, with a clear code."""
    from shared.jobs import service as jobs

    subject = str(args[0]) if args else ""
    log.error("refusing %s(%s) after %d deliveries that never finished", task, subject, attempts)
    if subject.startswith("ftj_"):
        jobs.fail_by_id(
            session,
            subject,
            CRASH_LOOP_CODE,
            f"ftq stopped after the worker running {task} for this job died {attempts - 1} "
            "times in a row; the operators were alerted by the logs and metrics",
        )
