"""Exactly-once submission and error classification, against the emulator served on loopback.

Crashes are injected between "the provider accepted" and "ftq stored the id" (an exception in the
worker, and a real worker process killed with os._exit); rerunning the task must find the provider
job (our id in its metadata) or file (our id in its name) instead of creating a second one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.jobs import lifecycle, service
from ftq.shared.migrate import upgrade
from ftq.shared.models import Dataset, Job, JobEvent
from ftq.shared.providers.base import ProviderRetryable
from ftq.shared.settings import reset_settings
from tests.factories import team_row
from tests.unit.test_providers_kit import (
    MODEL,
    Emulator,
    admitted_job,
    deliveries,
    ready_dataset,
    run_worker_in,
)
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

CREATE = "POST /v1/fine_tuning/jobs"
UPLOAD = "POST /v1/files"
HOOK = "http://127.0.0.1:9/hook"


class WorkerKilled(Exception):
    """Stands for the worker dying right after the provider accepted."""


def _job(session: Session, **fields: Any) -> Job:
    team, _ = team_row(session, f"team-{os.urandom(3).hex()}")
    return admitted_job(session, team, ready_dataset(session, team), webhook_url=HOOK, **fields)


def _messages(session: Session, job: Job) -> list[str]:
    query = select(JobEvent.message).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
    return list(session.scalars(query))


def test_crash_after_create_then_rerun_finds_the_provider_job(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    provider = tasks.get_provider("emulator")
    real_create = provider.create_job

    def create_then_die(spec: Any) -> Any:
        real_create(spec)
        raise WorkerKilled

    monkeypatch.setattr(provider, "create_job", create_then_die)
    with pytest.raises(WorkerKilled):
        tasks.submit_once(job.id)
    assert job.provider_job_id is None and job.status == "uploading"
    monkeypatch.setattr(provider, "create_job", real_create)

    provider_job_id = tasks.submit_once(job.id)
    assert job.provider_job_id == provider_job_id and job.status == "submitted"
    stats = fresh_emulator.control.stats()
    assert stats["jobs_created"] == 1 and stats["files_created"] == 1
    assert deliveries(session, job.id) == ["job.submitted"]
    # A third run (say, a redelivered message) changes nothing.
    assert tasks.submit_once(job.id) is None
    assert fresh_emulator.control.stats()["jobs_created"] == 1
    assert deliveries(session, job.id) == ["job.submitted"]


def test_crash_after_upload_then_rerun_finds_the_file(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    real_remember = service.remember_file

    def die(*args: Any) -> None:
        raise WorkerKilled

    monkeypatch.setattr(service, "remember_file", die)
    with pytest.raises(WorkerKilled):
        tasks.submit_once(job.id)
    monkeypatch.setattr(service, "remember_file", real_remember)
    tasks.submit_once(job.id)
    stats = fresh_emulator.control.stats()
    assert (stats["files_created"], stats["jobs_created"]) == (1, 1)
    assert job.status == "submitted"
    dataset = session.get(Dataset, job.training_dataset_id)
    assert dataset is not None and dataset.provider_files["emulator"].startswith("file-")


def test_lost_create_response_is_retried_without_a_twin(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    """The provider creates the job but the answer is lost (502): the retry finds it."""
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    fresh_emulator.control.faults(next_lost_response=1, only=[CREATE])
    tasks.submit.apply(args=[job.id])
    assert job.status == "submitted"
    assert fresh_emulator.control.stats()["jobs_created"] == 1
    assert fresh_emulator.calls(CREATE) == 1


def test_429_and_5xx_storm_ends_in_success(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    fresh_emulator.control.faults(next_429=3, next_5xx=3, retry_after_ms=1)
    tasks.submit.apply(args=[job.id])
    assert job.status == "submitted", _messages(session, job)
    stats = fresh_emulator.control.stats()
    assert stats["faults_injected"]["429"] == 3
    assert sum(stats["faults_injected"].get(code, 0) for code in ("500", "502", "503")) == 3
    assert stats["jobs_created"] == 1 and stats["files_created"] == 1
    retries = [m for m in _messages(session, job) if m.startswith("Provider busy or failing")]
    assert len(retries) == 6
    assert deliveries(session, job.id) == ["job.submitted"]


def test_endless_429s_fail_the_job_after_the_retries(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    fresh_emulator.control.faults(rate_429=1.0, retry_after_ms=1)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code) == ("failed", "provider_failed")
    assert "Rate limit reached" in (job.error_message or "")
    assert deliveries(session, job.id) == ["job.failed"]


def test_403_on_create_is_provider_unavailable_at_once(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    sent = run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    fresh_emulator.control.faults(create_403=True)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code) == ("failed", "provider_unavailable")
    assert "winding down" in (job.error_message or "")
    assert fresh_emulator.calls(CREATE) == 1, "a 403 is never retried"
    assert deliveries(session, job.id) == ["job.failed"]
    assert ("jobs.schedule", ["emulator", MODEL]) in sent, "the freed slot is handed on"


def test_400_fails_with_the_providers_message(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session, model="gpt-nonexistent-2099")
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code) == ("failed", "provider_rejected")
    assert "gpt-nonexistent-2099" in (job.error_message or "")
    assert fresh_emulator.calls(CREATE) == 1


def test_backoff_doubles_and_honours_retry_after() -> None:
    quick = ProviderRetryable("busy", retry_after=None)
    assert [tasks.backoff_seconds(n, quick) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    slow = ProviderRetryable("busy", retry_after=90.0)
    assert tasks.backoff_seconds(0, slow) == 90.0
    huge = ProviderRetryable("busy", retry_after=10_000.0)
    assert tasks.backoff_seconds(0, huge) == tasks.MAX_RETRY_AFTER_SECONDS


def test_a_cancel_during_submission_cancels_the_created_job(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    provider = tasks.get_provider("emulator")
    real_create = provider.create_job

    def create_while_cancelled(spec: Any) -> Any:
        created = real_create(spec)
        lifecycle.set_status(session, job, "cancelled", "Job cancelled at the team's request")
        return created

    monkeypatch.setattr(provider, "create_job", create_while_cancelled)
    provider_job_id = tasks.submit_once(job.id)
    assert provider_job_id is not None
    assert provider.get_job(provider_job_id).status == "cancelled"
    assert job.status == "cancelled"


KILLED_WORKER = textwrap.dedent(
    """
    import os, sys
    from openai import OpenAI
    from ftq.services.worker.tasks import jobs as tasks
    from ftq.shared.providers.openai_provider import OpenAIProvider

    provider = OpenAIProvider("emulator", OpenAI(api_key="t", base_url=sys.argv[2], max_retries=0))
    if sys.argv[3] == "kill":
        real_create = provider.create_job
        def create_then_die(spec):
            real_create(spec)
            os._exit(137)  # the worker dies: no cleanup, no commit
        provider.create_job = create_then_die
    tasks.get_provider = lambda name: provider
    print(tasks.submit_once(sys.argv[1]))
    """
)


def test_a_killed_worker_process_rerun_creates_one_provider_job(
    tmp_path: Path, fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real process dies right after the provider accepted; a new process reruns the task."""
    url = f"sqlite:///{tmp_path / 'ftq.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FTQ_")},
        "FTQ_DATABASE_URL": url,
        "FTQ_DATA_DIR": str(tmp_path),
        "FTQ_BROKER_URL": "memory://",
    }
    monkeypatch.setenv("FTQ_DATA_DIR", str(tmp_path))  # the blob goes where the worker looks
    reset_settings()
    try:
        with Session(engine) as db:
            team, _ = team_row(db, "killed")
            job_id = admitted_job(db, team, ready_dataset(db, team)).id
            db.commit()
    finally:
        monkeypatch.undo()
        reset_settings()
    base_url = f"{fresh_emulator.root}/v1"
    script = [sys.executable, "-c", KILLED_WORKER, job_id, base_url]
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run([*script, "kill"], cwd=root, env=env, capture_output=True, timeout=60)
    assert killed.returncode == 137, killed.stderr.decode()
    assert fresh_emulator.control.stats()["jobs_created"] == 1
    with Session(engine) as db:
        assert db.get(Job, job_id).provider_job_id is None  # type: ignore[union-attr]
    rerun = subprocess.run([*script, "run"], cwd=root, env=env, capture_output=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr.decode()
    with Session(engine) as db:
        stored = db.get(Job, job_id)
        assert stored is not None and stored.status == "submitted"
        assert rerun.stdout.decode().strip() == stored.provider_job_id
    assert fresh_emulator.control.stats()["jobs_created"] == 1
    engine.dispose()


def test_two_concurrent_submits_of_one_job_create_one_provider_job_and_one_file(
    engine: Any, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    """Two deliveries run at once against a provider taking 0.3 s a create (committed rows)."""
    import threading

    from sqlalchemy import delete

    from ftq.shared.db import get_sessionmaker
    from ftq.shared.models import Team

    make = get_sessionmaker()
    with make() as db:
        team, _ = team_row(db, f"twin-{os.urandom(3).hex()}")
        job_id = admitted_job(db, team, ready_dataset(db, team)).id
        db.commit()
        team_id = team.id
    provider = fresh_emulator.provider()
    monkeypatch.setattr(tasks, "get_provider", lambda name: provider)
    monkeypatch.setattr(tasks, "relay_now", lambda: 0)
    fresh_emulator.control.faults(latency_ms=300, only=[CREATE, UPLOAD])
    barrier = threading.Barrier(2)
    results: list[str | None] = []

    def deliver() -> None:
        barrier.wait(10)
        results.append(tasks.submit_once(job_id))

    try:
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stats = fresh_emulator.control.stats()
        assert (stats["jobs_created"], stats["files_created"]) == (1, 1), stats
        with make() as db:
            stored = db.get(Job, job_id)
            assert stored is not None and stored.status == "submitted"
            assert [r for r in results if r] == [stored.provider_job_id]
    finally:
        with make() as db:
            db.execute(delete(Team).where(Team.id == team_id))
            db.commit()


def test_a_cancel_while_uploading_then_a_dead_worker_leaves_no_provider_job_running(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    provider = tasks.get_provider("emulator")
    real_create = provider.create_job

    def cancelled_then_die(spec: Any) -> Any:
        real_create(spec)
        lifecycle.set_status(session, job, "cancelled", "Job cancelled at the team's request")
        raise WorkerKilled

    monkeypatch.setattr(provider, "create_job", cancelled_then_die)
    with pytest.raises(WorkerKilled):
        tasks.submit_once(job.id)
    monkeypatch.setattr(provider, "create_job", real_create)
    orphan = provider.find_job(job.id)
    assert orphan is not None and orphan.status != "cancelled"
    assert tasks.submit_once(job.id) is None, "the redelivered submit creates nothing"
    assert provider.get_job(orphan.id).status == "cancelled"
    assert fresh_emulator.control.stats()["jobs_created"] == 1


def test_a_second_provider_job_for_a_stored_job_is_an_orphan_and_is_cancelled(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    job = _job(session)
    first = tasks.submit_once(job.id)
    job.status = "uploading"  # as if a stale delivery still believed it was uploading
    session.flush()
    provider = tasks.get_provider("emulator")
    monkeypatch.setattr(provider, "find_job", lambda ftq_job_id: None)
    twin = tasks.submit_once(job.id)
    assert twin is not None and twin != first
    assert job.provider_job_id == first, "compare-and-set keeps the first provider job"
    assert provider.get_job(twin).status == "cancelled"
