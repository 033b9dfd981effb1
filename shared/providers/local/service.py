"""The life of a local run: create, claim (a lease), report, checkpoint, finish, cancel, revive.

A run is trained by whichever `local.train` task holds its lease. The lease names the process
(`host:pid:token`) and is renewed by every report; a task finding the lease held by a live
process drops out, and a run whose holder died (a dead pid on this host, or silence longer than
`FTQ_LOCAL_LEASE_SECONDS`) is revived by the provider sweep: `local.train` again, from the last
checkpoint.

On Ray (FTQ_LOCAL_BACKEND=ray) the task holding the lease follows a Ray Job (`{id}-a{attempt}`)
and the job's rank 0 writes as `ray:{id}-a{attempt}`: only the run's current attempt may report.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ftq.shared.ids import new_id
from ftq.shared.models import LocalCheckpoint, LocalRun, LocalRunEvent
from ftq.shared.outbox import enqueue
from ftq.shared.providers.base import METADATA_KEY, JobSpec, ProviderJob
from ftq.shared.providers.local import repository
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import as_utc, utcnow

TERMINAL = ("succeeded", "failed", "cancelled")
TRAIN_TASK = "local.train"


@dataclass(frozen=True)
class Event:
    """An event waiting to be written."""

    message: str
    type: str = "message"
    level: str = "info"
    data: dict[str, Any] | None = None


@dataclass
class Report:
    """What one report read back: whether to stop, and why."""

    cancel: bool = False
    lost: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def new_owner() -> str:
    """This process's lease name."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def ray_owner(run_id: str, attempt: int) -> str:
    """The name a Ray Job's rank 0 reports under (also its submission id after `ray:`)."""
    return f"ray:{run_id}-a{attempt}"


def holds(run: LocalRun, owner: str) -> bool:
    """Whether `owner` may write for the run: its lease holder or its current Ray attempt."""
    return owner == run.lease_owner or (run.attempt > 0 and owner == ray_owner(run.id, run.attempt))


def model_name(run: LocalRun) -> str:
    """`local:{base}:{suffix}:{short id}`, the fine-tuned model's name."""
    return f"local:{run.model}:{run.suffix or ''}:{run.id[-8:]}"


def work_dir() -> Path:
    """Where runs keep checkpoints (a volume every GPU worker shares)."""
    settings = get_settings()
    return settings.local_work_dir or settings.data_dir / "local"


def run_dir(run_id: str) -> Path:
    """A run's output folder (its `checkpoint-N` folders)."""
    return work_dir() / "runs" / run_id


def create(session: Session, spec: JobSpec) -> LocalRun:
    """Record a run for one of ftq's jobs and enqueue its training task."""
    run = LocalRun(
        id=new_id("lft"),
        ftq_job_id=spec.ftq_job_id,
        model=spec.model,
        training_file=spec.training_file,
        validation_file=spec.validation_file,
        method=dict(spec.method),
        suffix=spec.suffix,
        seed=spec.seed,
        run_metadata={**spec.metadata, METADATA_KEY: spec.ftq_job_id},
        status="queued",
        cancel_requested=False,
        attempts=0,
        step=0,
    )
    repository.add(session, run)
    add_events(session, run.id, [Event(f"Created fine-tuning job: {run.id}")])
    enqueue(session, TRAIN_TASK, run.id)
    return run


def to_provider_job(run: LocalRun) -> ProviderJob:
    """The provider's view of a run."""
    results = (f"file-local-result-{run.id}",) if run.result_key else ()
    return ProviderJob(
        id=run.id,
        status=run.status,
        fine_tuned_model=run.fine_tuned_model,
        trained_tokens=run.trained_tokens,
        error_code=run.error_code,
        error_message=run.error_message,
        result_files=results,
        metadata={k: str(v) for k, v in run.run_metadata.items()},
        created_at=_stamp(run.created_at),
        finished_at=_stamp(run.finished_at),
    )


def _stamp(value: datetime | None) -> int | None:
    moment = as_utc(value)
    return int(moment.timestamp()) if moment else None


def add_events(session: Session, run_id: str, events: list[Event]) -> None:
    """Append events to a run's timeline."""
    for event in events:
        session.add(
            LocalRunEvent(
                run_id=run_id,
                level=event.level,
                type=event.type,
                message=event.message,
                data=event.data,
            )
        )
    session.flush()


def request_cancel(session: Session, run_id: str) -> LocalRun | None:
    """Ask a run to stop; one not yet training is cancelled at once."""
    run = repository.lock(session, run_id)
    if run is None or run.status in TERMINAL:
        return run
    run.cancel_requested = True
    if run.status == "queued" and run.lease_owner is None:
        _finish(session, run, "cancelled", [Event("Job cancelled before training started")])
    return run


def claim(session: Session, run_id: str, owner: str) -> LocalRun | None:
    """Take a run's lease for `owner`; None when it is finished or a live worker holds it."""
    run = repository.lock(session, run_id)
    if run is None or run.status in TERMINAL:
        return None
    if run.cancel_requested:
        _finish(session, run, "cancelled", [Event("Job cancelled before training started")])
        return None
    if run.lease_owner and holder_alive(run, utcnow()):
        return None
    run.lease_owner, run.heartbeat_at = owner, utcnow()
    run.attempts += 1
    if run.started_at is None:
        run.started_at = utcnow()
    run.status = "running"
    session.flush()
    return run


def holder_alive(run: LocalRun, now: datetime) -> bool:
    """Whether the lease holder still runs: a live pid on this host, else a fresh heartbeat."""
    if not run.lease_owner:
        return False
    host, _, rest = run.lease_owner.partition(":")
    pid = int(rest.partition(":")[0] or 0)
    if host == socket.gethostname() and pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    beat = as_utc(run.heartbeat_at) or now
    return now - beat < timedelta(seconds=get_settings().local_lease_seconds)


def report(
    session: Session, run_id: str, owner: str, events: list[Event], step: int, total: int | None
) -> Report:
    """Write buffered events and a heartbeat; read back cancel requests and a lost lease."""
    run = repository.lock(session, run_id)
    if run is None or not holds(run, owner) or run.status in TERMINAL:
        return Report(lost=True)
    add_events(session, run_id, events)
    if owner == run.lease_owner:  # a Ray rank beats nothing: the following task's silence counts
        run.heartbeat_at = utcnow()
    run.step = max(run.step, step)
    if total:
        run.total_steps = total
    return Report(cancel=run.cancel_requested)


def record_checkpoint(
    session: Session, run_id: str, step: int, path: Path, metrics: dict[str, Any]
) -> None:
    """Keep a checkpoint row for `path` and forget rows whose folders were rotated away."""
    run = repository.get(session, run_id)
    if run is None:
        return
    kept = repository.checkpoints(session, run_id)
    stale = [c.id for c in kept if not Path(c.path).exists() or c.step == step]
    repository.drop_checkpoints(session, stale)
    repository.add(
        session, LocalCheckpoint(run_id=run_id, step=step, path=str(path), metrics=metrics)
    )
    add_events(
        session,
        run_id,
        [Event(f"Checkpoint created at step {step}", data={"step": step})],
    )


def succeed(
    session: Session, run_id: str, owner: str, *, tokens: int, prefix: str, result_key: str
) -> None:
    """Finish a run whose adapter is stored."""
    run = repository.lock(session, run_id)
    if run is None or not holds(run, owner) or run.status in TERMINAL:
        return
    run.fine_tuned_model = model_name(run)
    run.trained_tokens, run.artifact_prefix, run.result_key = tokens, prefix, result_key
    events = [
        Event(f"New fine-tuned model created: {run.fine_tuned_model}"),
        Event("The job has successfully completed"),
    ]
    _finish(session, run, "succeeded", events)


def stop(session: Session, run_id: str, owner: str, status: str, message: str, code: str) -> None:
    """Finish a run as cancelled or failed (only its lease holder may)."""
    run = repository.lock(session, run_id)
    if run is None or not holds(run, owner) or run.status in TERMINAL:
        return
    if status == "failed":
        run.error_code, run.error_message = code, message
    level = "error" if status == "failed" else "info"
    _finish(session, run, status, [Event(message, level=level)])


def fail_by_id(session: Session, run_id: str, code: str, message: str) -> None:
    """Fail an unfinished run whoever holds it (the job fails on its next sync)."""
    run = repository.lock(session, run_id)
    if run is None or run.status in TERMINAL:
        return
    run.error_code, run.error_message = code, message
    _finish(session, run, "failed", [Event(message, level="error")])


def _finish(session: Session, run: LocalRun, status: str, events: list[Event]) -> None:
    run.status, run.finished_at, run.lease_owner = status, utcnow(), None
    add_events(session, run.id, events)


def revive(session: Session, now: datetime | None = None) -> list[str]:
    """Re-enqueue training for active runs whose worker died (the run resumes from a checkpoint)."""
    now = now or utcnow()
    wait = timedelta(seconds=get_settings().local_lease_seconds)
    revived = []
    for run in repository.active(session):
        if run.cancel_requested and run.lease_owner is None:
            continue
        if run.lease_owner:
            if holder_alive(run, now):
                continue
            message = (
                f"The task following Ray Job {run.id}-a{run.attempt} stopped; following it again"
                if run.attempt
                else "Training worker stopped; resuming from the last checkpoint"
            )
        elif now - (as_utc(run.heartbeat_at) or as_utc(run.created_at) or now) < wait:
            continue
        else:
            message = "Training task not picked up; sending it again"
        run.lease_owner, run.heartbeat_at = None, now
        add_events(session, run.id, [Event(message, level="warn")])
        enqueue(session, TRAIN_TASK, run.id)
        revived.append(run.id)
    session.flush()
    return revived
