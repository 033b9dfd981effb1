"""The embedded runtime: a Celery worker (threads) and a beat ticker inside the API process."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager, ExitStack
from typing import Any

from celery.contrib.testing.worker import start_worker

from ftq.services.worker.celery_app import QUEUES, beat_schedule, celery_app
from ftq.shared.settings import get_settings

log = logging.getLogger(__name__)


class _Ticker(threading.Thread):
    """Sends each beat-schedule task at its interval, as `celery beat` does in production."""

    def __init__(self, schedule: dict[str, dict[str, Any]]) -> None:
        super().__init__(name="ftq-beat", daemon=True)
        self.entries = [(e["task"], float(e["schedule"])) for e in schedule.values()]
        self.stopped = threading.Event()

    def run(self) -> None:
        due = {task: 0.0 for task, _ in self.entries}
        while not self.stopped.wait(0.05):
            now = time.monotonic()
            for task, every in self.entries:
                if now >= due[task]:
                    due[task] = now + every
                    celery_app.send_task(task)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)


class EmbeddedRuntime(AbstractContextManager["EmbeddedRuntime"]):
    """Runs the very same tasks in-process on the memory broker."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.concurrency = concurrency or get_settings().worker_concurrency
        self.stack = ExitStack()
        self.ticker = _Ticker(beat_schedule(get_settings()))

    def __enter__(self) -> EmbeddedRuntime:
        self.stack.enter_context(
            start_worker(
                celery_app,
                pool="threads",
                concurrency=self.concurrency,
                perform_ping_check=False,
                hostname="ftq-embedded@localhost",
                shutdown_timeout=10.0,
                loglevel="WARNING",
                queues=list(QUEUES),
            )
        )
        self.ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ticker.stop()
        self.stack.close()
