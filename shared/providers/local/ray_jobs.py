"""Local runs as Ray Jobs: submit one per attempt, follow it like any provider's job, cancel it.

The `local.train` task holding a run's lease follows its Ray Job (`{run id}-a{attempt}`): status
into the run, heartbeats into the lease, cancel into `stop_job`. The job outlives the task, so a
restarted worker re-attaches by submission id. A job the cluster forgot, or one that failed
without finishing the run, is resubmitted from the last checkpoint as attempt + 1, decided with
the run's row locked so two live attempts of one run never exist.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ftq.shared.db import session_scope
from ftq.shared.models import LocalRun
from ftq.shared.providers.local import hyper, ray_cluster, repository, service
from ftq.shared.providers.local.service import Event
from ftq.shared.serving import free_port
from ftq.shared.settings import get_settings
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import utcnow

log = logging.getLogger(__name__)
ENTRY_MODULE = "ftq.shared.providers.local.ray_entry"
DONE = ("SUCCEEDED", "FAILED", "STOPPED")
# What a Ray Job inherits from the worker: the database, storage and model settings.
PASSED_ENV = ("FTQ_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "TQDM_")
HEAD_START_SECONDS = 90.0
AGENT_WAIT_SECONDS = 180.0  # how long a submit waits for a new head's job agent
_head_lock = threading.Lock()


def submission_id(run_id: str, attempt: int) -> str:
    """The Ray Job id of one attempt of a run."""
    return f"{run_id}-a{attempt}"


def storage_path() -> Path:
    """Where Ray Train keeps checkpoints: a folder of blob storage."""
    path = get_blob_store().path("local/ray")
    path.mkdir(parents=True, exist_ok=True)
    return path


def client() -> Any:
    """A job client for FTQ_RAY_ADDRESS, or for the head this worker starts once."""
    from ray.job_submission import JobSubmissionClient

    if not get_settings().ray_address:
        ensure_head()
    # The token is passed explicitly: Ray reads its auth mode once per process, at import.
    return JobSubmissionClient(ray_cluster.address(), headers=ray_cluster.auth_headers() or None)


def ensure_head() -> None:
    """Start a Ray head on this machine unless one answers (it outlives this worker)."""
    with _head_lock:
        if ray_cluster.resources() is not None:
            return
        settings = get_settings()
        ray = Path(sys.executable).with_name("ray")
        command = [
            str(ray),
            "start",
            "--head",
            f"--port={free_port()}",
            f"--dashboard-port={settings.ray_dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--disable-usage-stats",
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=HEAD_START_SECONDS)
        ray_cluster.forget()
        deadline = time.monotonic() + HEAD_START_SECONDS
        while ray_cluster.resources() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray head this worker started does not answer")
            time.sleep(1.0)
            ray_cluster.forget()


def submit(jobs: Any, run_id: str, attempt: int) -> str:
    """Submit an attempt as a Ray Job; a redelivered submit gets the job it already made."""
    sid = submission_id(run_id, attempt)
    python = shlex.quote(sys.executable) if not get_settings().ray_address else "python"
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    metadata = {"ftq_run": run_id, "attempt": str(attempt)}
    entrypoint = f"{python} -m {ENTRY_MODULE} {run_id} {attempt}"
    return submit_entrypoint(jobs, entrypoint, sid, env=env, metadata=metadata)


def submit_entrypoint(
    jobs: Any,
    entrypoint: str,
    sid: str,
    *,
    env: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    """Submit `entrypoint` as the Ray Job `sid` once (an existing one is followed instead)."""
    deadline = time.monotonic() + AGENT_WAIT_SECONDS
    while True:
        try:
            jobs.submit_job(
                entrypoint=entrypoint,
                submission_id=sid,
                runtime_env={"env_vars": env or {}},
                metadata=metadata or {},
            )
        except RuntimeError as exc:
            if "already exists" in str(exc):
                log.info("Ray Job %s already exists; following it", sid)
                return sid
            # A head that has just started answers before its job agent is up.
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
            continue
        return sid


def status(jobs: Any, sid: str) -> str | None:
    """A Ray Job's status word; None when the cluster does not know the job."""
    try:
        word = jobs.get_job_status(sid)
    except RuntimeError as exc:
        if "does not exist" in str(exc) or "404" in str(exc):
            return None
        raise
    return str(getattr(word, "value", word))


def follow(run_id: str) -> str:
    """Take the run's lease and follow its Ray Job until the run ends; the outcome as a word."""
    owner = service.new_owner()
    jobs = client()
    with session_scope() as session:
        run = service.claim(session, run_id, owner)
        if run is None:
            return "skipped"
        if not _attach(session, jobs, run):
            return run.status
    stopping = False
    while True:
        time.sleep(get_settings().ray_poll_seconds)
        try:
            word = status(jobs, submission_id(run_id, _attempt(run_id)))
        except Exception as exc:  # the cluster blinked: the job goes on, look again
            log.warning("Ray status of %s failed: %s", run_id, exc)
            word = "UNKNOWN"
        with session_scope() as session:
            outcome, stopping = _step(session, jobs, run_id, owner, word, stopping)
        if outcome is not None:
            return outcome


def _attempt(run_id: str) -> int:
    with session_scope() as session:
        run = repository.get(session, run_id)
        return run.attempt if run else 0


def _attach(session: Any, jobs: Any, run: LocalRun) -> bool:
    """Follow the run's live attempt, or submit the next one; False when the run cannot start."""
    if not run.attempt:
        return _resubmit(session, jobs, run, "")
    sid = submission_id(run.id, run.attempt)
    live = status(jobs, sid)
    if live is not None and live not in DONE:
        service.add_events(session, run.id, [Event(f"Following Ray Job {sid} again")])
        return True
    return _resubmit(session, jobs, run, f"Ray Job {sid} is {(live or 'lost').lower()}")


def _resubmit(session: Any, jobs: Any, run: LocalRun, why: str) -> bool:
    """Submit attempt + 1 (the caller holds the row's lock); False once attempts run out."""
    if run.attempt >= get_settings().ray_max_attempts:
        message = f"Training failed on Ray after {run.attempt} attempts: {why}"[:2000]
        service.stop(session, run.id, run.lease_owner or "", "failed", message, "training_failed")
        return False
    wanted = hyper.scale(hyper.method_params(run.method))
    view = ray_cluster.resources()
    refusal = hyper.unfit(wanted, view) if view is not None else None
    if refusal is not None:
        owner = run.lease_owner or ""
        service.stop(session, run.id, owner, "failed", refusal[1], "invalid_hyperparameters")
        return False
    run.attempt += 1
    session.flush()
    sid = submit(jobs, run.id, run.attempt)
    where = f"Resubmitted ({why}) as Ray Job {sid}" if why else f"Submitted Ray Job {sid}"
    service.add_events(session, run.id, [Event(where, level="warn" if why else "info")])
    return True


def _step(
    session: Any, jobs: Any, run_id: str, owner: str, word: str | None, stopping: bool
) -> tuple[str | None, bool]:
    """One look at the job: heartbeat, cancel, finish or resubmit; (outcome or None, stopping)."""
    run = repository.lock(session, run_id)
    if run is None:
        return "lost", False
    sid = submission_id(run.id, run.attempt)
    running = word is not None and word not in DONE
    if run.status in service.TERMINAL:
        if running and run.status != "succeeded":  # failed or cancelled from outside: stop it
            jobs.stop_job(sid)
        return run.status, False
    if run.lease_owner != owner:  # another task follows the run now
        return "lost", False
    run.heartbeat_at = utcnow()
    if run.cancel_requested and running and not stopping:
        jobs.stop_job(sid)
        return None, True
    if running:
        return None, stopping
    if run.cancel_requested:
        message = f"Job cancelled during training at step {run.step}"
        service.stop(session, run_id, owner, "cancelled", message, "cancelled")
        return "cancelled", False
    why = (
        f"Ray Job {sid} is {word.lower()} without the run finishing"
        if word
        else (f"the Ray cluster lost Ray Job {sid}")
    )
    return (None if _resubmit(session, jobs, run, why) else "failed"), False
