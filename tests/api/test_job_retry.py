"""POST /v1/jobs/{id}/retry: the diagnosis's suggested run (or the caller's) on the same data."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import sync
from ftq.shared.models import Job, JobEvent
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"
OVERFIT = {
    "final": True,
    "steps": 48,
    "total_steps": 48,
    "findings": [
        {
            "kind": "overfitting",
            "evidence": {"steps": [17, 48], "values": [0.41, 0.9]},
            "suggestion": {"n_epochs": 2},
            "message": "the validation loss rose",
        },
        {
            "kind": "noisy",
            "evidence": {"steps": [3], "values": [1.9]},
            "suggestion": {"batch_size": 8},
            "message": "noisy",
        },
    ],
}


def _finished_job(
    client: TestClient, session: Session, team: dict[str, Any], status: str = "succeeded"
) -> dict[str, Any]:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    body = {
        "model": MODEL,
        "training_dataset": dataset["id"],
        "validation_split": 0.25,
        "suffix": "units",
        "metadata": {"owner": "ml"},
        "method": {"type": "supervised", "hyperparameters": {"n_epochs": 4, "batch_size": 4}},
    }
    created = client.post("/v1/jobs", json=body, headers=auth(team))
    assert created.status_code == 201, created.text
    job = session.get(Job, created.json()["id"])
    assert job is not None
    job.status, job.diagnosis = status, OVERFIT
    session.flush()
    return dict(created.json())


def _messages(session: Session, job_id: str) -> list[str]:
    query = select(JobEvent.message).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    return list(session.scalars(query))


def test_retry_starts_the_suggested_run_on_the_same_data(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    old = _finished_job(client, session, team)
    response = client.post(f"/v1/jobs/{old['id']}/retry", headers=auth(team))
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["id"] != old["id"] and new["status"] == "queued"
    same = ("model", "provider", "training_dataset", "validation_dataset", "suffix", "metadata")
    assert {k: new[k] for k in same} == {k: old[k] for k in same}
    hyper = new["method"]["hyperparameters"]
    assert (hyper["n_epochs"], hyper["batch_size"]) == (2, 8)
    assert new["diagnosis"] is None
    assert any(
        f"Retry of job {old['id']} with n_epochs=2, batch_size=8" in m and "overfitting" in m
        for m in _messages(session, new["id"])
    )
    assert f"Retried as job {new['id']} with n_epochs=2, batch_size=8" in _messages(
        session, old["id"]
    )


def test_the_callers_overrides_win_over_the_suggestion(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    old = _finished_job(client, session, team, status="failed")
    body = {"hyperparameters": {"learning_rate_multiplier": 0.3}}
    new = client.post(f"/v1/jobs/{old['id']}/retry", json=body, headers=auth(team)).json()
    hyper = new["method"]["hyperparameters"]
    assert (hyper["n_epochs"], hyper["batch_size"], hyper["learning_rate_multiplier"]) == (
        4,
        4,
        0.3,
    )
    bad = client.post(
        f"/v1/jobs/{old['id']}/retry", json={"hyperparameters": {"n_epochs": 0}}, headers=auth(team)
    )
    assert bad.status_code == 422


def test_an_unfinished_job_is_409_and_another_teams_job_404(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    old = _finished_job(client, session, team, status="running")
    response = client.post(f"/v1/jobs/{old['id']}/retry", headers=auth(team))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_finished"
    other = create_team(client, "team-b")
    assert client.post(f"/v1/jobs/{old['id']}/retry", headers=auth(other)).status_code == 404


def test_an_idempotency_key_replays_the_same_retry(client: TestClient, session: Session) -> None:
    team = create_team(client)
    old = _finished_job(client, session, team)
    headers = {**auth(team), "Idempotency-Key": "retry-1"}
    first = client.post(f"/v1/jobs/{old['id']}/retry", headers=headers)
    second = client.post(f"/v1/jobs/{old['id']}/retry", headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"


def test_the_job_view_carries_the_diagnosis(client: TestClient, session: Session) -> None:
    team = create_team(client)
    old = _finished_job(client, session, team)
    read = client.get(f"/v1/jobs/{old['id']}", headers=auth(team)).json()
    assert read["diagnosis"] == OVERFIT
    job = session.get(Job, old["id"])
    assert job is not None
    job.diagnosis = None
    sync.update_diagnosis(session, job, final=True)  # no metrics: an empty final diagnosis
    assert job.diagnosis is not None and job.diagnosis["findings"] == []
