"""Helpers shared by the provider, polling and exactly-once tests (this module holds no tests).

- `Emulator`: the OpenAI emulator served on a loopback port, its controls, and an SDK provider.
- `run_worker_in(session, monkeypatch, emulator)`: the worker's task functions use the test's
  rolled-back session (each unit of work a savepoint) and reach the emulator as `emulator`.
- `ready_dataset` / `admitted_job`: rows (and a blob) as the scheduler leaves them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from openai import OpenAI
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.emulator.app import create_app
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread
from ftq.shared.ids import new_id
from ftq.shared.models import Dataset, Job, Team, WebhookDelivery
from ftq.shared.outbox import relay
from ftq.shared.providers.base import JobSpec, ProviderJob
from ftq.shared.providers.openai_provider import OpenAIProvider
from ftq.shared.storage import get_blob_store
from ftq.shared.timeutil import utcnow
from tests.factories import chat_jsonl

MODEL = "gpt-4o-mini-2024-07-18"


class Emulator:
    """A served emulator (a test double of OpenAI) with its controls."""

    def __init__(self, speed: float = 0.0) -> None:
        self.root, self._stop = serve_in_thread(create_app(speed=max(speed, 1e-9)))
        self.control = EmulatorControl(self.root)
        if speed == 0:
            self.control.speed(0)

    def provider(self, name: str = "emulator") -> OpenAIProvider:
        """A provider speaking to this emulator through the SDK (no SDK retries)."""
        client = OpenAI(api_key="test", base_url=f"{self.root}/v1", max_retries=0, timeout=20)
        return OpenAIProvider(name, client)

    def calls(self, route: str) -> int:
        """How often a route ("POST /v1/fine_tuning/jobs") was called."""
        return int(self.control.stats()["calls"].get(route, 0))

    def requests_total(self) -> int:
        """Every API request so far (controls excluded)."""
        calls = self.control.stats()["calls"]
        return sum(int(n) for route, n in calls.items() if " /_emulator" not in route)

    def close(self) -> None:
        """Stop serving."""
        self.control.close()
        self._stop()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One frozen emulator per module (reset per test by `fresh_emulator`)."""
    served = Emulator(speed=0)
    yield served
    served.close()


@pytest.fixture
def fresh_emulator(emulator: Emulator) -> Emulator:
    """The module's emulator, reset and frozen (jobs move only when advanced)."""
    emulator.control.reset()
    emulator.control.speed(0)
    return emulator


def run_worker_in(
    session: Session, monkeypatch: pytest.MonkeyPatch, emulator: Emulator
) -> list[tuple[str, list[Any]]]:
    """Run the worker's code on the test session against the emulator; returns relayed tasks."""
    from ftq.services.worker.tasks import jobs as tasks

    sent: list[tuple[str, list[Any]]] = []

    @contextmanager
    def scope() -> Iterator[Session]:
        with session.begin_nested():
            yield session
        session.flush()

    def relay_now() -> int:
        return relay(session, lambda task, args: sent.append((task, list(args))))

    providers = {"emulator": emulator.provider()}
    monkeypatch.setattr(tasks, "session_scope", scope)
    monkeypatch.setattr(tasks, "relay_now", relay_now)
    monkeypatch.setattr(tasks, "get_provider", lambda name: providers[name])
    return sent


def ready_dataset(session: Session, team: Team, content: bytes | None = None) -> Dataset:
    """A validated dataset whose file is in blob storage."""
    content = content or chat_jsonl(12)
    dataset_id = new_id("ds")
    key = f"datasets/{team.id}/{dataset_id}.jsonl"
    get_blob_store().write_bytes(key, content)
    dataset = Dataset(
        id=dataset_id,
        team_id=team.id,
        name="units.jsonl",
        purpose="fine-tune",
        model=MODEL,
        bytes=len(content),
        sha256=new_id("sha"),
        blob_key=key,
        status="ready",
        n_examples=content.count(b"\n"),
        report={"estimated_cost_usd": 0.01, "auto_n_epochs": 3},
        provider_files={},
    )
    session.add(dataset)
    session.flush()
    return dataset


def admitted_job(session: Session, team: Team, dataset: Dataset, **fields: Any) -> Job:
    """A job that holds a provider slot and waits for the submit task."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": "uploading",
        "provider": "emulator",
        "model": MODEL,
        "ready_at": now,
        "admitted_at": now,
        **fields,
    }
    job = Job(
        id=new_id("ftj"),
        team_id=team.id,
        training_dataset_id=dataset.id,
        method={"type": "supervised", "hyperparameters": {"n_epochs": 2}},
        job_metadata={"owner": "tests"},
        **values,
    )
    session.add(job)
    session.flush()
    return job


def provider_job(emulator: Emulator, file_id: str, ftq_job_id: str) -> ProviderJob:
    """A job created directly at the emulator, tagged with an ftq id."""
    return emulator.provider().create_job(
        JobSpec(ftq_job_id=ftq_job_id, model=MODEL, training_file=file_id)
    )


def deliveries(session: Session, job_id: str) -> list[str]:
    """The webhook event types emitted for a job, in order."""
    query = (
        select(WebhookDelivery.event_type)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at)
    )
    return list(session.scalars(query))
