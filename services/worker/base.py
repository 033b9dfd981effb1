"""The base class of every ftq task: counts deliveries in the database and caps them."""

from __future__ import annotations

from typing import Any

from celery import Task
from sqlalchemy.orm import Session

from ftq.shared.attempts import service
from ftq.shared.attempts.service import Failer
from ftq.shared.datasets import service as datasets
from ftq.shared.db import session_scope
from ftq.shared.evals import service as evals
from ftq.shared.jobs import lifecycle
from ftq.shared.observability.metrics import record_crash_loop
from ftq.shared.providers.local import service as local
from ftq.shared.settings import get_settings
from ftq.shared.webhooks import service as webhooks

# What a refused message's first argument names, by id prefix, and how to fail it.
FAILERS: dict[str, tuple[str, Failer]] = {
    "ftj": ("job", lifecycle.fail_by_id),
    "ds": ("dataset", datasets.fail_validation),
    "ev": ("eval", evals.fail_by_id),
    "lft": ("local run", local.fail_by_id),
    "whd": ("webhook delivery", webhooks.fail_by_id),
}


def refuse(session: Session, task: str, args: tuple[Any, ...], attempts: int) -> None:
    """Give up on a poison message and fail the job, dataset, eval or run it names."""
    service.refuse(session, task, args, attempts, FAILERS)


class CappedTask(Task):  # type: ignore[misc]
    """acks_late plus reject_on_worker_lost redeliver a task whose worker died; after
    `FTQ_TASK_MAX_DELIVERIES` starts that never finished, the message is refused instead."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:
            return super().__call__(*args, **kwargs)  # a plain function call: no message
        delivery = self._delivery()
        if delivery is None or not args:  # argless beat sweeps: a redelivery is harmless
            return self.run(*args, **kwargs)
        with session_scope() as session:
            attempts = service.start(session, delivery, self.name)
        if attempts > get_settings().task_max_deliveries:
            self._refuse(args, attempts)
            return None
        try:
            # The worker's tracer already pushed the request (id, retries): super() would
            # push a bare one over it, so run the body directly, as Celery's docs do.
            return self.run(*args, **kwargs)
        finally:
            with session_scope() as session:
                service.finish(session, delivery)

    def _delivery(self) -> str | None:
        request = self.request
        if request.id is None:
            return None
        return f"{request.id}:{request.retries or 0}"

    def _refuse(self, args: tuple[Any, ...], attempts: int) -> None:
        from ftq.services.worker.tasks.outbox import relay_now

        record_crash_loop(self.name)
        with session_scope() as session:
            refuse(session, self.name, args, attempts)
        relay_now()
