"""The `together` provider end to end: the API, the real worker code, the real `together` SDK and
the emulator's Together AI API (a test double) served on loopback.

Datasets and jobs go in over HTTP; the worker's task functions run on the test's session (each
unit of work a savepoint) and reach the emulator through the plugin's own client, so the whole
path is ftq's: submit (files, find before create), the provider sweep (events, metrics,
checkpoints, the result file into blob storage), cancel, retries and failures. The exactly-once
test kills a real worker process between Together's "accepted" and ftq's "stored".
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import scheduling, service
from ftq.shared.migrate import upgrade
from ftq.shared.models import Dataset, Job, JobEvent
from ftq.shared.outbox import relay
from ftq.shared.providers.registry import get_provider
from ftq.shared.providers.together.provider import TogetherProvider
from ftq.shared.settings import reset_settings
from ftq.shared.storage import get_blob_store
from tests.factories import auth, chat_jsonl, create_team, team_row, upload
from tests.unit.test_providers_kit import Emulator, admitted_job, ready_dataset

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
CREATE = "POST /together/v1/fine-tunes"
ANNOUNCE = "POST /together/v1/files"


class WorkerKilled(Exception):
    """Stands for the worker dying right after Together accepted."""


@pytest.fixture(scope="module")
def served() -> Iterator[Emulator]:
    """One emulator per module, frozen (jobs move only when advanced)."""
    emulator = Emulator(speed=0)
    yield emulator
    emulator.close()


@pytest.fixture
def emulator(served: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator reset, and this server's `together` provider pointed at it."""
    served.control.reset()
    served.control.speed(0)
    monkeypatch.setenv("FTQ_TOGETHER_BASE_URL", f"{served.root}/together")
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    reset_settings()
    yield served
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def worker(session: Session, monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> Any:
    """The worker's task functions on the test session, with the plugin's real provider."""

    @contextmanager
    def scope() -> Iterator[Session]:
        with session.begin_nested():
            yield session
        session.flush()

    sent: list[tuple[str, list[Any]]] = []
    provider = get_provider("together")
    monkeypatch.setattr(tasks, "session_scope", scope)
    monkeypatch.setattr(
        tasks, "relay_now", lambda: relay(session, lambda t, a: sent.append((t, list(a))))
    )
    monkeypatch.setattr(tasks, "get_provider", lambda name, **_: provider)
    return provider


def _job(client: TestClient, session: Session, **body: Any) -> tuple[dict[str, Any], Job]:
    """A dataset uploaded and validated for Together's model, and a job admitted to a slot."""
    team = create_team(client, f"team-{os.urandom(3).hex()}")
    dataset = upload(client, team, chat_jsonl(20), model=MODEL).json()
    datasets.run_validation(session, dataset["id"])
    request = {"model": MODEL, "training_dataset": dataset["id"], "provider": "together", **body}
    created = client.post("/v1/jobs", json=request, headers=auth(team))
    assert created.status_code == 201, created.text
    admitted = scheduling.schedule(session, "together", MODEL)
    job = session.get(Job, created.json()["id"])
    assert job is not None and job in admitted and job.status == "uploading"
    return team, job


def _messages(session: Session, job: Job, source: str | None = None) -> list[str]:
    query = select(JobEvent.message).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
    if source is not None:
        query = query.where(JobEvent.source == source)
    return list(session.scalars(query))


def test_a_together_job_runs_to_succeeded_with_events_metrics_checkpoints_and_its_result(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    method = {
        "type": "supervised",
        "hyperparameters": {"n_epochs": 2, "n_checkpoints": 2, "lora_rank": 16},
    }
    team, job = _job(client, session, method=method, suffix="units")
    report = session.get(Dataset, job.training_dataset_id).report  # type: ignore[union-attr]
    assert report["tokens_exact"] is False
    assert report["token_count_source"].startswith("estimate from cl100k_base")

    provider_job_id = tasks.submit.apply(args=[job.id]).get()
    assert (job.status, job.provider_job_id) == ("submitted", provider_job_id)
    at_together = worker.client.fine_tuning.retrieve(provider_job_id)
    assert at_together.model_extra["suffix"] == "units-ftj-" + job.id.removeprefix("ftj_")
    assert at_together.training_type.lora_r == 16  # type: ignore[union-attr]
    assert worker.get_job(provider_job_id).ftq_job_id == job.id

    emulator.control.advance(provider_job_id, to_status="running")
    tasks.sweep_provider("together", now=_later(job))
    assert (job.status, job.provider_status) == ("running", "running")
    emulator.control.advance(provider_job_id)
    tasks.sweep_provider("together", now=_later(job))
    assert job.status == "succeeded", _messages(session, job)
    assert "ftj-" + job.id.removeprefix("ftj_") in (job.fine_tuned_model or "")

    together = _messages(session, job, "provider")
    assert any(m.startswith("Fine-tuning job completed") for m in together)
    assert any(m.startswith("Step 1/") for m in together), "OpenAI-shaped metric events"
    path = f"/v1/jobs/{job.id}"
    metrics = client.get(f"{path}/metrics", headers=auth(team)).json()["data"]
    steps = [m["step"] for m in metrics]
    assert steps == list(range(1, steps[-1] + 1)) and metrics[0]["train_loss"] > 0
    assert metrics[0]["total_steps"] == steps[-1]
    checkpoints = client.get(f"{path}/checkpoints", headers=auth(team)).json()["data"]
    assert len({c["step_number"] for c in checkpoints}) == 2
    assert all(job.fine_tuned_model in c["fine_tuned_model_checkpoint"] for c in checkpoints)
    result = client.get(path, headers=auth(team)).json()["result_file"]
    assert result["provider_file_id"] == f"{provider_job_id}-metrics"
    download = client.get(result["url"], headers=auth(team))
    assert download.status_code == 200
    assert download.text.splitlines()[0].startswith("step,train_loss")
    assert get_blob_store().path(job.result_blob_key or "").read_bytes() == download.content
    stats = emulator.control.stats()
    assert (stats["jobs_created"], stats["files_created"]) == (1, 1)

    routed = client.post(
        "/v1/chat/completions",
        json={"model": f"together:{job.fine_tuned_model}", "messages": [_hello()]},
        headers=auth(team),
    )
    assert routed.status_code == 200, routed.text
    assert job.fine_tuned_model in routed.json()["choices"][0]["message"]["content"]


def _hello() -> dict[str, str]:
    return {"role": "user", "content": "hello"}


def _later(job: Job) -> Any:
    """A sweep time at which the job's next check is due."""
    from datetime import timedelta

    from ftq.shared.timeutil import as_utc, utcnow

    due = as_utc(job.next_poll_at) or utcnow()
    return max(due, utcnow()) + timedelta(seconds=1)


def test_a_cancelled_job_is_cancelled_at_together(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    team, job = _job(client, session)
    provider_job_id = tasks.submit.apply(args=[job.id]).get()
    emulator.control.advance(provider_job_id, to_status="running")
    cancelled = client.post(f"/v1/jobs/{job.id}/cancel", headers=auth(team))
    assert cancelled.json()["status"] == "cancelled"
    assert tasks.cancel_at_provider.apply(args=[job.id]).get() == "running", "cancel_requested"
    assert worker.get_job(provider_job_id).raw_status == "cancel_requested"
    emulator.control.advance(provider_job_id)
    assert worker.get_job(provider_job_id).status == "cancelled"


def test_a_job_cancelled_at_together_is_cancelled_in_ftq(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    _, job = _job(client, session)
    provider_job_id = tasks.submit.apply(args=[job.id]).get()
    worker.cancel_job(provider_job_id)
    emulator.control.advance(provider_job_id)
    tasks.sweep_provider("together", now=_later(job))
    assert (job.status, job.provider_status) == ("cancelled", "cancelled")


def test_a_429_is_retried_and_creates_one_job(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    _, job = _job(client, session)
    emulator.control.faults(next_429=2, retry_after_ms=1, only=[CREATE])
    tasks.submit.apply(args=[job.id])
    assert job.status == "submitted", _messages(session, job)
    stats = emulator.control.stats()
    assert stats["faults_injected"]["429"] == 2
    assert (stats["jobs_created"], stats["files_created"]) == (1, 1)
    retries = [m for m in _messages(session, job) if m.startswith("Provider busy or failing (429")]
    assert len(retries) == 2


def test_a_403_fails_the_job_as_provider_unavailable_at_once(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    _, job = _job(client, session)
    emulator.control.faults(create_403=True)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code) == ("failed", "provider_unavailable")
    assert "not available to this account" in (job.error_message or "")
    assert emulator.calls(CREATE) == 1, "a 403 is never retried"


def test_an_invalid_request_fails_with_togethers_reason_before_any_create(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    method = {"type": "supervised", "hyperparameters": {"batch_size": 256, "lora_rank": 8}}
    _, job = _job(client, session, method=method)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code) == ("failed", "provider_rejected")
    assert "batch size of 256" in (job.error_message or "")
    assert emulator.calls(CREATE) == 0


def test_a_crash_after_upload_then_a_rerun_finds_the_file(
    session: Session, monkeypatch: pytest.MonkeyPatch, emulator: Emulator, worker: Any
) -> None:
    team, _ = team_row(session, f"team-{os.urandom(3).hex()}")
    job = admitted_job(
        session, team, ready_dataset(session, team), provider="together", model=MODEL
    )
    real_remember = service.remember_file

    def die(*args: Any) -> None:
        raise WorkerKilled

    monkeypatch.setattr(service, "remember_file", die)
    with pytest.raises(WorkerKilled):
        tasks.submit_once(job.id)
    monkeypatch.setattr(service, "remember_file", real_remember)
    assert tasks.submit_once(job.id) == job.provider_job_id
    stats = emulator.control.stats()
    assert (stats["files_created"], stats["jobs_created"]) == (1, 1)
    assert emulator.calls(ANNOUNCE) == 1


KILLED_WORKER = textwrap.dedent(
    """
    import os, sys
    from ftq.services.worker.tasks import jobs as tasks
    from ftq.shared.providers.registry import get_provider

    provider = get_provider("together")
    if sys.argv[2] == "kill":
        real_create = provider.create_job
        def create_then_die(spec):
            real_create(spec)
            os._exit(137)  # the worker dies after Together accepted: nothing stored
        provider.create_job = create_then_die
    tasks.get_provider = lambda name, **_: provider
    print(tasks.submit_once(sys.argv[1]))
    """
)


def test_a_worker_killed_between_accepted_and_stored_leaves_one_job_and_one_file(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ftq.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FTQ_")},
        "FTQ_DATABASE_URL": url,
        "FTQ_DATA_DIR": str(tmp_path),
        "FTQ_BROKER_URL": "memory://",
        "FTQ_TOGETHER_BASE_URL": f"{emulator.root}/together",
    }
    monkeypatch.setenv("FTQ_DATA_DIR", str(tmp_path))  # the blob goes where the worker looks
    reset_settings()
    with Session(engine) as db:
        team, _ = team_row(db, "killed")
        dataset = ready_dataset(db, team)
        job_id = admitted_job(db, team, dataset, provider="together", model=MODEL).id
        dataset_id = dataset.id
        db.commit()
    script = [sys.executable, "-c", KILLED_WORKER, job_id]
    root = Path(__file__).resolve().parents[2]
    killed = subprocess.run([*script, "kill"], cwd=root, env=env, capture_output=True, timeout=90)
    assert killed.returncode == 137, killed.stderr.decode()
    assert emulator.control.stats()["jobs_created"] == 1
    with Session(engine) as db:
        assert db.get(Job, job_id).provider_job_id is None  # type: ignore[union-attr]
    rerun = subprocess.run([*script, "run"], cwd=root, env=env, capture_output=True, timeout=90)
    assert rerun.returncode == 0, rerun.stderr.decode()
    with Session(engine) as db:
        stored = db.get(Job, job_id)
        assert stored is not None and stored.status == "submitted"
        assert rerun.stdout.decode().strip().splitlines()[-1] == stored.provider_job_id
        assert db.get(Dataset, dataset_id).provider_files["together"].startswith("file-")  # type: ignore[union-attr]
    stats = emulator.control.stats()
    assert (stats["jobs_created"], stats["files_created"]) == (1, 1)
    assert emulator.calls(CREATE) == 1 and emulator.calls(ANNOUNCE) == 1
    engine.dispose()


def test_the_openai_compatible_surface_reaches_together(
    client: TestClient, session: Session, emulator: Emulator, worker: TogetherProvider
) -> None:
    from tests.openai_kit import sdk

    team = create_team(client, f"compat-{os.urandom(3).hex()}")
    api = sdk(client, team["api_key"]["key"])
    dataset = upload(client, team, chat_jsonl(20), model=MODEL).json()
    datasets.run_validation(session, dataset["id"])
    training = "file-" + dataset["id"].removeprefix("ds_")
    named = api.fine_tuning.jobs.create(model=f"together:{MODEL}", training_file=training)
    tagged = api.fine_tuning.jobs.create(
        model=MODEL, training_file=training, metadata={"ftq_provider": "together"}
    )
    for created in (named, tagged):
        assert (created.model, (created.model_extra or {})["provider"]) == (MODEL, "together")
    scheduling.schedule(session, "together", MODEL)
    job = session.get(Job, "ftj_" + named.id.removeprefix("ftjob-"))
    assert job is not None
    provider_job_id = tasks.submit.apply(args=[job.id]).get()
    emulator.control.advance(provider_job_id)
    tasks.sweep_provider("together", now=_later(job))
    done = api.fine_tuning.jobs.retrieve(named.id)
    assert done.status == "succeeded" and done.fine_tuned_model == job.fine_tuned_model
    assert [e.type for e in api.fine_tuning.jobs.list_events(named.id, limit=100)].count(
        "metrics"
    ) > 0
    tuned = done.fine_tuned_model or ""
    for model in (f"together:{tuned}", tuned):  # the bare tuned name finds its provider too
        reply = api.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}]
        )
        assert tuned and tuned in (reply.choices[0].message.content or "")
    other = sdk(client, create_team(client, f"other-{os.urandom(3).hex()}")["api_key"]["key"])
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model=tuned, messages=[{"role": "user", "content": "hi"}])
