"""Task names are the wire format: messages queued before a rename must still be consumed."""

from __future__ import annotations

from ftq.services.worker.celery_app import celery_app

# The names every queued message carries; they did not change with the `ftq` import name.
WIRE_NAMES = {
    "datasets.validate",
    "evals.run",
    "evals.run_local",
    "evals.sweep",
    "idempotency.purge",
    "jobs.cancel_at_provider",
    "jobs.control_at_provider",
    "jobs.poll",
    "jobs.schedule",
    "jobs.submit",
    "jobs.sweep",
    "jobs.sync_provider",
    "local.train",
    "outbox.relay",
    "schedules.tick",
    "sweeps.advance",
    "webhooks.deliver",
    "webhooks.sweep",
}


def test_every_task_keeps_its_wire_name() -> None:
    celery_app.loader.import_default_modules()
    ours = {
        name
        for name, task in celery_app.tasks.items()
        if task.__module__.startswith("ftq.services.worker.tasks.")
    }
    assert ours == WIRE_NAMES


def test_the_tasks_live_under_the_ftq_package() -> None:
    celery_app.loader.import_default_modules()
    for name in WIRE_NAMES:
        assert celery_app.tasks[name].__module__.startswith("ftq.services.worker.tasks."), name
