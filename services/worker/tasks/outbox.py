"""outbox.relay: send tasks whose transactions committed but whose enqueue did not happen."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Sequence

from ftq.services.worker.celery_app import celery_app, send
from ftq.shared.db import session_scope
from ftq.shared.models import OutboxMessage
from ftq.shared.outbox import SWEEP_GRACE, Sends, mark, relay, send_leased
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)
# How long the marks thread gathers outcomes before writing them: far under the outbox lease.
MARK_DELAY = 0.05
RETRY_SECONDS = 1.0  # after the database refused a batch


@celery_app.task(name="outbox.relay")
def relay_task() -> int:
    """Relay what the request-time relay missed (broker down, process killed)."""
    total = 0
    older_than = utcnow() - SWEEP_GRACE
    while True:
        with session_scope() as session:
            sent = relay(session, send, older_than=older_than)
        total += sent
        if sent < 200:
            return total


def relay_now() -> int:
    """Relay every pending message right after a commit (workers); failures wait for the sweep."""
    try:
        with session_scope() as session:
            return relay(session, send)
    except Exception:  # the sweep retries; the caller's commit already succeeded
        return 0


def send_own(messages: Sequence[OutboxMessage]) -> int:
    """Send what a committed request leased to itself; the dispatch marks follow in a batch."""
    if not messages:
        return 0
    outcome = send_leased(messages, send)
    marks.add(outcome)
    return len(outcome.sent)


class DispatchMarks:
    """Relays' outcomes waiting to be written, one transaction per batch, by a thread.

    A request that sent its messages does not wait for a second transaction to mark them: the
    lease keeps other relays off them, and the marks land well within it.
    """

    def __init__(self, delay: float = MARK_DELAY) -> None:
        self.delay = delay
        self._pending = Sends()
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, outcome: Sends) -> None:
        """Queue an outcome; it is written within `delay` seconds."""
        if not outcome:
            return
        with self._lock:
            self._pending.extend(outcome)
            self._start_here()
        self._due.set()

    def flush(self) -> bool:
        """Write what is queued now, after any batch being written; False when the database
        refused (the batch stays queued, and the lease still holds)."""
        with self._writing:
            with self._lock:
                batch, self._pending = self._pending, Sends()
            if not batch:
                return True
            try:
                with session_scope() as session:
                    mark(session, batch)
            except Exception as exc:
                log.warning("outbox marks postponed: %s", type(exc).__name__)
                with self._lock:
                    batch.extend(self._pending)
                    self._pending = batch
                return False
            return True

    def _start_here(self) -> None:
        # A forked server process inherits no running thread: each process starts its own.
        if self._thread is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="ftq-outbox-marks", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._due.wait()
            time.sleep(self.delay)  # gather the requests of this moment into one UPDATE
            self._due.clear()
            if not self.flush():
                time.sleep(RETRY_SECONDS)
                self._due.set()


marks = DispatchMarks()
