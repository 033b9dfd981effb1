"""The Celery app: one definition for the embedded worker and the production pools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from ftq.services.worker import broker, observability
from ftq.shared import wiring
from ftq.shared.db import reset_engine
from ftq.shared.settings import Settings, exit_on_config_error, get_settings

QUEUES = ("validate", "provider", "webhooks", "evals", "gpu")
TASK_MODULES = [
    "ftq.services.worker.tasks.datasets",
    "ftq.services.worker.tasks.jobs",
    "ftq.services.worker.tasks.webhooks",
    "ftq.services.worker.tasks.outbox",
    "ftq.services.worker.tasks.idempotency",
    "ftq.services.worker.tasks.evals",
    "ftq.services.worker.tasks.local",
    "ftq.services.worker.tasks.sweeps",
    "ftq.services.worker.tasks.schedules",
]
ROUTES = {
    "datasets.*": {"queue": "validate"},
    "jobs.*": {"queue": "provider"},
    "webhooks.*": {"queue": "webhooks"},
    "evals.run_local": {"queue": "gpu"},  # evals of local models: only GPU workers have torch
    "evals.*": {"queue": "evals"},
    "outbox.*": {"queue": "provider"},
    "sweeps.*": {"queue": "provider"},
    "schedules.*": {"queue": "provider"},
    "local.*": {"queue": "gpu"},  # one worker process per GPU: -Q gpu -c 1
}
# Longer than any task's hard time limit, so Redis never hands a running task to a second worker.
VISIBILITY_TIMEOUT = 2 * 60 * 60
TASK_TIME_LIMIT = 30 * 60


def transport_options(settings: Settings) -> dict[str, Any]:
    """Broker options: a fast poll for the in-memory broker, the visibility timeout for Redis."""
    if settings.broker_url.startswith("memory"):
        # kombu's memory transport polls once a second by default: far too slow in-process.
        return {"polling_interval": 0.01}
    return {"visibility_timeout": VISIBILITY_TIMEOUT}


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Sweeps that claim due rows from Postgres; no task waits in the broker for long."""
    every = settings.sweep_interval_seconds
    return {
        "outbox-relay": {"task": "outbox.relay", "schedule": max(every, 1.0)},
        "jobs-sweep": {"task": "jobs.sweep", "schedule": every},
        "webhooks-sweep": {"task": "webhooks.sweep", "schedule": every},
        "idempotency-purge": {"task": "idempotency.purge", "schedule": 3600.0},
        "evals-sweep": {"task": "evals.sweep", "schedule": max(every, 10.0)},
        "sweeps-advance": {"task": "sweeps.advance", "schedule": max(every, 5.0)},
        "schedules-tick": {"task": "schedules.tick", "schedule": max(every, 10.0)},
    }


def create_celery(settings: Settings | None = None) -> Celery:
    """Build the Celery app from settings."""
    settings = settings or get_settings()
    wiring.install()
    # CappedTask counts deliveries in the database, so a poison message cannot loop forever.
    app = Celery(
        "ftq",
        broker=settings.broker_url,
        include=TASK_MODULES,
        task_cls="ftq.services.worker.base:CappedTask",
    )
    options = transport_options(settings)
    app.conf.update(
        task_routes=ROUTES,
        task_default_queue="provider",
        task_acks_late=True,  # a task is acknowledged only after it ran: a crash re-runs it
        task_reject_on_worker_lost=True,  # a killed worker's task goes back to the queue
        # A Redis channel that survives a broker restart (services/worker/broker.py).
        broker_transport=broker.transport_for(settings.broker_url),
        worker_prefetch_multiplier=1,  # long tasks must not sit reserved behind each other
        task_ignore_result=True,  # state lives in Postgres, not in a result backend
        task_time_limit=TASK_TIME_LIMIT,  # below the visibility timeout, so no double run
        task_soft_time_limit=TASK_TIME_LIMIT - 60,  # a catchable warning a minute before the kill
        broker_transport_options=options,  # Redis redelivers unacked tasks after this timeout
        result_backend_transport_options=options,  # the same timeout if a Redis backend is added
        broker_connection_retry_on_startup=True,  # a worker started before Redis waits for it
        worker_enable_soft_shutdown_on_idle=True,  # also requeue reserved work when idle at SIGTERM
        worker_soft_shutdown_timeout=60.0,  # give running tasks a minute after SIGTERM
        worker_hijack_root_logger=False,  # JSON logs are ours (ftq.services.worker.observability)
        beat_schedule=beat_schedule(settings),
        timezone="UTC",
    )
    return app


with exit_on_config_error():  # a bad setting: one stderr line, exit status 2
    celery_app = create_celery()
app = celery_app
observability.install(celery_app)


@worker_process_init.connect
def _fresh_engine_after_fork(**_: Any) -> None:
    """Forked pool processes must not share the parent's database connections."""
    reset_engine()


def send(task: str, args: Sequence[Any]) -> None:
    """Send a task by name to its queue (used by the outbox relay)."""
    celery_app.send_task(task, args=list(args))
