"""Fallback providers over HTTP: what POST /v1/jobs accepts, refuses, and moves at creation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import service as jobs_service
from ftq.shared.settings import reset_settings
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def team(client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A team with a ready dataset (`team["dataset"]`), and `openai` configured on the server."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-failover")
    reset_settings()
    created = create_team(client)
    dataset = upload(client, created, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    return {**created, "dataset": dataset["id"]}


def _create(client: TestClient, team: dict[str, Any], **body: Any) -> Any:
    payload = {"model": MODEL, "training_dataset": team["dataset"], **body}
    return client.post("/v1/jobs", json=payload, headers=auth(team))


def test_the_job_shows_its_fallbacks_and_model_map(
    client: TestClient, team: dict[str, Any]
) -> None:
    response = _create(
        client,
        team,
        provider="emulator",
        fallback_providers=["openai"],
        model_map={"openai": "gpt-4.1-mini-2025-04-14"},
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["fallback_providers"] == ["openai"]
    assert job["model_map"] == {"openai": "gpt-4.1-mini-2025-04-14"}
    read = client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).json()
    assert read["fallback_providers"] == ["openai"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"fallback_providers": ["nowhere"]}, "fallback_providers[0]", "unknown provider"),
        ({"fallback_providers": ["emulator"]}, "fallback_providers[0]", "own provider"),
        ({"fallback_providers": ["openai", "openai"]}, "fallback_providers", "twice"),
        ({"model_map": {"openai": "gpt-4.1"}}, "model_map", "not in fallback_providers"),
        (
            {
                "fallback_providers": ["openai"],
                "method": {"type": "supervised", "hyperparameters": {"lora_rank": 8}},
            },
            "method.hyperparameters.lora_rank",
            "fallback",
        ),
    ],
)
def test_bad_fallbacks_are_a_422_naming_the_field(
    client: TestClient, team: dict[str, Any], body: dict[str, Any], param: str, words: str
) -> None:
    provider = "local" if "method" in body else "emulator"
    response = _create(client, team, provider=provider, **body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert param in (error.get("param") or "") + error["message"], error
    assert words in error["message"], error


def test_a_model_closed_at_its_provider_is_created_on_the_fallback(
    client: TestClient, team: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After 2027-01-06 OpenAI takes no new jobs: the job starts on the listed fallback."""
    monkeypatch.setattr(jobs_service, "utcnow", lambda: datetime(2027, 2, 1, tzinfo=UTC))
    response = _create(client, team, provider="openai", fallback_providers=["emulator"])
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["provider"], job["model"], job["fallback_providers"]) == ("emulator", MODEL, [])
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=auth(team)).json()["data"]
    notes = [e["message"] for e in events if e["message"].startswith("Created on emulator")]
    assert notes and "openai" in notes[0] and "2027-01-06" in notes[0], events


def test_a_closed_model_without_a_fallback_is_still_refused(
    client: TestClient, team: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_service, "utcnow", lambda: datetime(2027, 2, 1, tzinfo=UTC))
    response = _create(client, team, provider="openai")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "model_closed"
