"""The list-based provider sweep against the (frozen) emulator: calls, back-off, what is stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.jobs import sync
from ftq.shared.models import Job, JobCheckpoint, JobEvent, JobMetric, Team
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import utcnow
from tests.factories import chat_jsonl, team_row
from tests.unit.test_providers_kit import (
    Emulator,
    admitted_job,
    deliveries,
    provider_job,
    ready_dataset,
    run_worker_in,
)
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

HOOK = "http://127.0.0.1:9/hook"


def _followed(
    session: Session, emulator: Emulator, tmp_path: Path, count: int
) -> tuple[Team, list[Job]]:
    """`count` jobs submitted to the emulator, as ftq stores them after submission."""
    team, _ = team_row(session, f"poll-{count}")
    dataset = ready_dataset(session, team)
    path = tmp_path / "train.jsonl"
    path.write_bytes(chat_jsonl(12))
    file_id = emulator.provider().upload_file(path, "train.jsonl")
    jobs = []
    for _ in range(count):
        job = admitted_job(session, team, dataset, status="submitted", webhook_url=HOOK)
        created = provider_job(emulator, file_id, job.id)
        job.provider_job_id, job.provider_created_at = created.id, created.created_at
        job.provider_status = created.status
        jobs.append(job)
    session.flush()
    return team, jobs


def _count(session: Session, model: type, job: Job) -> int:
    column = model.job_id  # type: ignore[attr-defined]
    return int(session.scalar(select(func.count()).where(column == job.id)) or 0)


def test_sweep_lists_pages_and_reads_events_only_for_jobs_that_moved(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    monkeypatch.setattr(tasks, "LIST_PAGE", 2)
    _, jobs = _followed(session, fresh_emulator, tmp_path, 5)
    provider = tasks.get_provider("emulator")
    now = utcnow()

    before = fresh_emulator.requests_total()
    first = tasks.sweep_provider("emulator", provider=provider, now=now)
    assert (first.list_calls, len(first.synced), first.job_calls) == (3, 5, 5)
    assert fresh_emulator.requests_total() - before == first.calls

    before = fresh_emulator.requests_total()
    quiet = tasks.sweep_provider("emulator", provider=provider, now=now + timedelta(seconds=1))
    assert (quiet.list_calls, quiet.job_calls, quiet.synced) == (3, 0, [])
    assert fresh_emulator.requests_total() - before == 3

    moved = jobs[2]
    fresh_emulator.control.advance(str(moved.provider_job_id), seconds=40)  # files validated
    before = fresh_emulator.requests_total()
    third = tasks.sweep_provider("emulator", provider=provider, now=now + timedelta(seconds=2))
    assert third.synced == [moved.id] and third.job_calls == 1
    assert fresh_emulator.requests_total() - before == 4
    assert moved.provider_status == "queued" and moved.status == "submitted"
    messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == moved.id)).all()
    assert "Files validated, moving job to queued state" in messages


def test_listing_stops_at_jobs_older_than_every_followed_job(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    monkeypatch.setattr(tasks, "LIST_PAGE", 2)
    _, history = _followed(session, fresh_emulator, tmp_path, 6)
    for job in history:  # the emulator keeps them; ftq no longer follows them
        job.status = "succeeded"
    ghost = history[0]
    ghost.status, ghost.provider_job_id = "running", "ftjob-vanished"
    ghost.provider_created_at = int(utcnow().timestamp()) + 100
    session.flush()
    report = tasks.sweep_provider("emulator", now=utcnow())
    assert report.list_calls == 1, "the first page is already older than the followed job"
    assert report.job_calls == 1 and report.errors == 1  # read alone: 404 here


def test_a_job_run_is_stored_once_with_metrics_checkpoints_and_result_file(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    _, (job,) = _followed(session, fresh_emulator, tmp_path, 1)
    provider_job_id = str(job.provider_job_id)
    fresh_emulator.control.advance(provider_job_id, seconds=100)  # running, a few steps in
    tasks.sweep_provider("emulator", now=utcnow())
    assert (job.status, job.provider_status) == ("running", "running")
    steps_so_far, events = _count(session, JobMetric, job), _count(session, JobEvent, job)
    assert steps_so_far >= 1
    # Reading the same provider state again (a retry, a webhook-triggered poll) adds nothing.
    provider = tasks.get_provider("emulator")
    state = provider.get_job(provider_job_id)
    sync.apply_provider_state(session, job.id, state, provider.events_after(provider_job_id, None))
    assert (_count(session, JobMetric, job), _count(session, JobEvent, job)) == (
        steps_so_far,
        events,
    )

    fresh_emulator.control.advance(provider_job_id)  # to the end
    report = tasks.sweep_provider("emulator", now=utcnow())
    assert report.synced == [job.id]
    assert job.status == "succeeded" and job.fine_tuned_model
    total = session.scalar(select(JobMetric.total_steps).where(JobMetric.job_id == job.id))
    assert total == 96  # 12 examples, batch 1, auto epochs: min(25, 100 // 12) = 8
    assert _count(session, JobMetric, job) == total
    checkpoints = session.scalars(select(JobCheckpoint).where(JobCheckpoint.job_id == job.id)).all()
    assert [c.step_number for c in checkpoints] == [72, 84, 96]  # the last 3 epochs
    assert checkpoints[-1].fine_tuned_model_checkpoint == job.fine_tuned_model
    assert job.result_file_id and job.result_blob_key
    csv = get_blob_store().path(job.result_blob_key).read_bytes()
    assert csv.startswith(b"step,") and csv.count(b"\n") >= 96
    assert deliveries(session, job.id) == ["job.running", "job.succeeded"]
    assert tasks.poll(job.id) is None, "finished jobs are no longer followed"


def test_quiet_running_jobs_are_checked_on_a_doubling_schedule(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    _, (running, waiting) = _followed(session, fresh_emulator, tmp_path, 2)
    fresh_emulator.control.advance(str(running.provider_job_id), seconds=65)  # running, step 0
    start = utcnow()
    tasks.sweep_provider("emulator", now=start)
    assert running.poll_interval_seconds == 15

    def sweep_at(seconds: float) -> int:
        report = tasks.sweep_provider("emulator", now=start + timedelta(seconds=seconds))
        return report.job_calls

    assert sweep_at(5) == 0, "not due yet: the list alone"
    assert sweep_at(16) == 1, "due: one events read, nothing new"
    assert running.poll_interval_seconds == 30
    assert sweep_at(40) == 0
    assert sweep_at(47) == 1
    assert running.poll_interval_seconds == 60
    assert waiting.provider_status == "validating_files"
    assert waiting.poll_interval_seconds == 60, "quiet non-running jobs back off without reads"
    fresh_emulator.control.advance(str(running.provider_job_id), seconds=30)  # new steps
    assert sweep_at(108) == 1
    assert running.poll_interval_seconds == 15, "a change resets the interval"


def test_poll_syncs_one_job_now(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    _, (job,) = _followed(session, fresh_emulator, tmp_path, 1)
    fresh_emulator.control.advance(str(job.provider_job_id), seconds=65)
    assert tasks.poll(job.id) == "running"
    assert job.status == "running" and job.provider_fingerprint


def test_pause_resume_and_cancel_reach_the_provider(
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    fresh_emulator: Emulator,
    tmp_path: Path,
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    _, (job,) = _followed(session, fresh_emulator, tmp_path, 1)
    provider_job_id = str(job.provider_job_id)
    fresh_emulator.control.advance(provider_job_id, seconds=65)
    tasks.poll(job.id)
    tasks.control_at_provider.apply(args=[job.id, "pause"])
    assert (job.status, job.provider_status) == ("running", "paused")
    assert tasks.get_provider("emulator").get_job(provider_job_id).status == "paused"
    tasks.control_at_provider.apply(args=[job.id, "pause"])  # refused: already paused
    tasks.control_at_provider.apply(args=[job.id, "resume"])
    assert job.provider_status == "running"
    messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job.id)).all()
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages
    assert any(m.startswith("The provider refused to pause") for m in messages)
    tasks.cancel_at_provider.apply(args=[job.id])
    assert tasks.get_provider("emulator").get_job(provider_job_id).status == "cancelled"
    tasks.sweep_provider("emulator", now=utcnow())
    assert job.status == "cancelled"
    assert deliveries(session, job.id) == ["job.running", "job.cancelled"]
