"""Local LoRA training tasks (queue gpu): `local.train(run_id)`, one per job, one per GPU (or
one per Ray Job it follows)."""

from __future__ import annotations

from ftq.services.worker.celery_app import celery_app
from ftq.services.worker.tasks.outbox import relay_now
from ftq.shared.settings import get_settings

LIMIT = get_settings().local_time_limit_seconds


@celery_app.task(
    name="local.train",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=LIMIT,
    soft_time_limit=LIMIT - 60,
)
def train(run_id: str) -> str:
    """Train a local run (resuming from its last checkpoint) unless a live worker holds it.

    On Ray (FTQ_LOCAL_BACKEND=ray) the run trains as a Ray Job this task follows to its end.
    """
    if get_settings().local_backend == "ray":
        from ftq.shared.providers.local.ray_jobs import follow

        outcome = follow(run_id)
    else:
        from ftq.shared.providers.local.trainer import run_training

        outcome = run_training(run_id)
    relay_now()
    return outcome
