"""Count task deliveries in the database; refuse a message that keeps killing its worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session

from shared.attempts import repository
from shared.timeutil import utcnow

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


def _failers() -> dict[str, tuple[str, Failer]]:
    """Id prefix -> (what it names, how to fail it)."""
    from shared.datasets import service as datasets
    from shared.evals import service as evals
    from shared.jobs import service as jobs
    from shared.providers.local import service as local
    from shared.webhooks import service as webhooks

    return {
        "ftj": ("job", jobs.fail_by_id),
        "ds": ("dataset", datasets.fail_validation),
        "ev": ("eval", evals.fail_by_id),
        "lft": ("local run", local.fail_by_id),
        "whd": ("webhook delivery", webhooks.fail_by_id),
    }


def refuse(session: Session, task: str, args: tuple[object, ...], attempts: int) -> None:
    """Give up on a poison message: fail the job, dataset, eval or local run it names."""
    subject = str(args[0]) if args else ""
    log.error("refusing %s(%s) after %d deliveries that never finished", task, subject, attempts)
    found = _failers().get(subject.partition("_")[0]) if "_" in subject else None
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
