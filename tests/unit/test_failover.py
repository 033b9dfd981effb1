"""Failover: a job its provider refuses moves to the next provider it lists, with an event.

Two emulators stand for two providers (`emulator` and `openai`); the worker's submit task runs on
the test's session against them, and the scheduler admits the moved job on its new provider.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.ids import new_id
from ftq.shared.jobs import scheduling
from ftq.shared.models import Job, JobEvent, ProviderCredential
from ftq.shared.outbox import relay
from ftq.shared.providers.base import ProviderRejected
from ftq.shared.security import encrypt
from ftq.shared.settings import reset_settings
from tests.factories import team_row
from tests.unit.test_providers_kit import MODEL, Emulator, admitted_job, ready_dataset

CREATE = "POST /v1/fine_tuning/jobs"


@pytest.fixture(scope="module")
def two_emulators() -> Iterator[tuple[Emulator, Emulator]]:
    """One emulator for the `emulator` provider, one standing for `openai`."""
    first, second = Emulator(speed=0), Emulator(speed=0)
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def providers(
    two_emulators: tuple[Emulator, Emulator],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Emulator, Emulator, list[tuple[str, list[Any]]]]]:
    """Reset emulators; `openai` configured; the worker's code runs on the test session."""
    primary, fallback = two_emulators
    for emulator in two_emulators:
        emulator.control.reset()
        emulator.control.speed(0)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-failover")
    reset_settings()
    sent: list[tuple[str, list[Any]]] = []

    @contextmanager
    def scope() -> Iterator[Session]:
        with session.begin_nested():
            yield session
        session.flush()

    built = {"emulator": primary.provider(), "openai": fallback.provider("openai")}
    monkeypatch.setattr(tasks, "session_scope", scope)
    monkeypatch.setattr(
        tasks, "relay_now", lambda: relay(session, lambda t, a: sent.append((t, list(a))))
    )
    monkeypatch.setattr(tasks, "get_provider", lambda name, *args, **kwargs: built[name])
    yield primary, fallback, sent
    reset_settings()


def _job(session: Session, content: bytes | None = None, **fields: Any) -> Job:
    team, _ = team_row(session, f"team-{os.urandom(3).hex()}")
    return admitted_job(session, team, ready_dataset(session, team, content), **fields)


def _events(session: Session, job: Job) -> list[str]:
    query = select(JobEvent.message).where(JobEvent.job_id == job.id).order_by(JobEvent.id)
    return list(session.scalars(query))


def test_a_403_moves_the_job_to_its_fallback_which_then_runs_it(
    session: Session, providers: tuple[Emulator, Emulator, list[tuple[str, list[Any]]]]
) -> None:
    primary, fallback, sent = providers
    job = _job(session, fallback_providers=["openai"])
    primary.control.faults(create_403=True)

    tasks.submit.apply(args=[job.id])

    assert (job.status, job.provider, job.model) == ("queued", "openai", MODEL)
    assert job.fallback_providers == [] and job.error_code is None
    moved = [m for m in _events(session, job) if m.startswith("Moved from emulator")]
    assert len(moved) == 1 and "closed to new fine-tuning jobs" in moved[0], _events(session, job)
    assert ("jobs.schedule", ["emulator", MODEL]) in sent, "the old slot is handed on"
    assert ("jobs.schedule", ["openai", MODEL]) in sent

    assert [j.id for j in scheduling.schedule(session, "openai", MODEL)] == [job.id]
    tasks.submit_once(job.id)
    assert (job.status, job.provider) == ("submitted", "openai")
    assert fallback.control.stats()["jobs_created"] == 1
    assert primary.control.stats()["jobs_created"] == 0


def test_a_model_the_provider_does_not_offer_moves_to_the_mapped_model(
    session: Session, providers: tuple[Emulator, Emulator, list[tuple[str, list[Any]]]]
) -> None:
    job = _job(
        session,
        model="gpt-nonexistent-2099",
        fallback_providers=["openai"],
        model_map={"openai": "gpt-4.1-mini-2025-04-14"},
    )
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.provider, job.model) == ("queued", "openai", "gpt-4.1-mini-2025-04-14")
    assert any("does not offer the model" in m for m in _events(session, job))


def test_an_unconfigured_fallback_is_skipped_and_the_job_fails_saying_so(
    session: Session, providers: tuple[Emulator, Emulator, list[tuple[str, list[Any]]]]
) -> None:
    primary, _, _ = providers
    job = _job(session, fallback_providers=["azure-openai"])
    primary.control.faults(create_403=True)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code, job.provider) == (
        "failed",
        "provider_unavailable",
        "emulator",
    )
    assert any("azure-openai (not configured here)" in m for m in _events(session, job))


def test_the_fallback_models_limits_are_checked_again_before_moving(
    session: Session, providers: tuple[Emulator, Emulator, list[tuple[str, list[Any]]]]
) -> None:
    """gpt-3.5-turbo-0613 trains on 4,096 tokens: an example of ~6,000 does not fit there."""
    primary, fallback, _ = providers
    long_reply = " ".join(["word"] * 6000)
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": a}]}
        for i, a in enumerate(["short answer"] * 11 + [long_reply])
    ]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    job = _job(
        session,
        content=content,
        fallback_providers=["openai"],
        model_map={"openai": "gpt-3.5-turbo-0613"},
    )
    primary.control.faults(create_403=True)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code) == ("failed", "invalid_dataset")
    assert "gpt-3.5-turbo-0613" in (job.error_message or "")
    assert "line 12" in (job.error_message or ""), job.error_message
    assert fallback.control.stats()["jobs_created"] == 0


def test_a_rejection_that_is_not_about_the_model_does_not_move(
    session: Session,
    providers: tuple[Emulator, Emulator, list[tuple[str, list[Any]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, fallback, _ = providers
    job = _job(session, fallback_providers=["openai"])
    refusal = ProviderRejected("n_epochs must be at most 50", code="invalid_n_epochs", status=400)
    emulator = tasks.get_provider("emulator")

    def refuse(spec: Any) -> Any:
        raise refusal

    monkeypatch.setattr(emulator, "create_job", refuse)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.error_code, job.provider) == ("failed", "provider_rejected", "emulator")
    assert fallback.control.stats()["jobs_created"] == 0


def test_a_fallback_the_team_holds_a_key_for_is_used_with_that_key(
    session: Session,
    providers: tuple[Emulator, Emulator, list[tuple[str, list[Any]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server has no OpenAI key, the team registered one: the job moves and records it."""
    primary, _, _ = providers
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("FTQ_OPENAI_API_KEY", raising=False)
    reset_settings()
    job = _job(session, fallback_providers=["openai"])
    credential = ProviderCredential(
        id=new_id("pcr"),
        team_id=job.team_id,
        provider="openai",
        key_encrypted=encrypt("sk-team-own-key"),
        key_hint="-key",
    )
    session.add(credential)
    session.flush()
    primary.control.faults(create_403=True)
    tasks.submit.apply(args=[job.id])
    assert (job.status, job.provider, job.credential_id) == ("queued", "openai", credential.id)
