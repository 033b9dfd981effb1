"""Sweep tasks.

- `sweeps.advance` (beat): for every running sweep, stop trials clearly worse than the best so
  far and, once every trial and its eval has settled, pick the winner and emit
  `sweep.completed`. Each sweep is advanced under its row lock in its own transaction, so two
  beats or a retried task never complete a sweep twice.
"""

from __future__ import annotations

import logging

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.tasks.outbox import relay_now
from ftq.shared.db import session_scope
from ftq.shared.sweeps import service

log = logging.getLogger(__name__)


@celery_app.task(name="sweeps.advance")
def advance() -> int:
    """Advance every running sweep; how many finished."""
    with session_scope() as session:
        running = service.running_ids(session)
    finished = 0
    for sweep_id in running:
        with session_scope() as session:
            finished += service.advance(session, sweep_id)
    relay_now()
    return finished
