"""Eval schedule tasks.

- `schedules.tick` (beat): claim every due active schedule from Postgres (`FOR UPDATE SKIP
  LOCKED`), record the slot's run (unique per schedule and slot) and start an ordinary eval,
  advancing the schedule past now; then settle the runs whose eval has finished, emitting
  `eval.regressed` once per regressed run. Claiming and settling each commit on their own, so a
  crash in one loses nothing of the other, and two beats never run a slot twice.
"""

from __future__ import annotations

import logging

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.tasks.outbox import relay_now
from ftq.shared.db import session_scope
from ftq.shared.schedules import service

log = logging.getLogger(__name__)


@celery_app.task(name="schedules.tick")
def tick() -> dict[str, int]:
    """Start due slots' evals and settle finished runs; how many of each."""
    with session_scope() as session:
        started = len(service.claim_due(session))
    with session_scope() as session:
        settled = len(service.settle_finished(session))
    if started or settled:
        log.info("eval schedules: %d runs started, %d settled", started, settled)
    relay_now()
    return {"started": started, "settled": settled}
