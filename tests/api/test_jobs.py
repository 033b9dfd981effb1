"""Job creation, tenancy, quotas, cancel and events over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from shared.datasets import service as datasets
from tests.conftest import SentTasks
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"


def _ready_dataset(
    client: TestClient, session: Session, team: dict[str, Any], content: bytes | None = None
) -> dict[str, Any]:
    dataset = upload(client, team, content or chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    return dict(client.get(f"/v1/datasets/{dataset['id']}", headers=auth(team)).json())


def _create(client: TestClient, team: dict[str, Any], **body: Any) -> Any:
    return client.post("/v1/jobs", json={"model": MODEL, **body}, headers=auth(team))


def test_job_on_a_ready_dataset_is_queued_for_submission(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    assert dataset["status"] == "ready"
    response = _create(
        client, team, training_dataset=dataset["id"], suffix="units", metadata={"owner": "ml"}
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["id"].startswith("ftj_")
    assert job["status"] == "queued"
    assert job["queue_position"] == 1
    assert job["metadata"] == {"owner": "ml"}
    assert job["method"]["type"] == "supervised"
    assert ("jobs.submit", [job["id"]]) in sent_tasks


def test_job_waits_for_validation_then_is_released(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    job = _create(client, team, training_dataset=dataset["id"]).json()
    assert job["status"] == "queued"
    assert "jobs.submit" not in sent_tasks.names()
    datasets.run_validation(session, dataset["id"])
    session.flush()
    from services.api import uow

    uow.relay_now()
    assert ("jobs.submit", [job["id"]]) in sent_tasks


def test_job_on_invalid_dataset_fails_with_invalid_dataset(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\n' * 12
    dataset = upload(client, team, bad).json()
    job = _create(client, team, training_dataset=dataset["id"]).json()
    datasets.run_validation(session, dataset["id"])
    read = client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).json()
    assert read["status"] == "failed"
    assert read["error"]["code"] == "invalid_dataset"
    again = _create(client, team, training_dataset=dataset["id"])
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "invalid_dataset"
    assert again.json()["error"]["param"] == "training_dataset"


def test_missing_or_foreign_dataset_is_404_naming_the_field(
    client: TestClient, session: Session
) -> None:
    owner, other = create_team(client, "owner"), create_team(client, "other")
    foreign = _ready_dataset(client, session, owner)
    for dataset_id in ("ds_missing", foreign["id"]):
        response = _create(client, other, training_dataset=dataset_id)
        assert response.status_code == 404
        assert response.json()["error"]["param"] == "training_dataset"
    assert client.get("/v1/jobs", headers=auth(other)).json()["data"] == []


def test_another_teams_job_is_404(client: TestClient, session: Session) -> None:
    owner, other = create_team(client, "owner"), create_team(client, "other")
    dataset = _ready_dataset(client, session, owner)
    job = _create(client, owner, training_dataset=dataset["id"]).json()
    for method, path in (
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ("GET", f"/v1/jobs/{job['id']}/events"),
    ):
        assert client.request(method, path, headers=auth(other)).status_code == 404


def test_bad_hyperparameters_name_the_field(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    response = _create(
        client,
        team,
        training_dataset=dataset["id"],
        method={"type": "supervised", "hyperparameters": {"n_epochs": 99}},
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "method.hyperparameters.n_epochs"
    unknown = _create(client, team, training_dataset=dataset["id"], colour="blue")
    assert unknown.status_code == 422
    assert unknown.json()["error"]["param"] == "colour"


def test_max_active_jobs_is_enforced(client: TestClient, session: Session) -> None:
    team = create_team(client, max_active_jobs=1)
    dataset = _ready_dataset(client, session, team)
    assert _create(client, team, training_dataset=dataset["id"]).status_code == 201
    second = _create(client, team, training_dataset=dataset["id"])
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "max_active_jobs"


def test_cancel_queued_job_then_cancel_again_is_409(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    job = _create(client, team, training_dataset=dataset["id"]).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(team))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(team))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_not_cancellable"
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=auth(team)).json()["data"]
    assert [e["message"] for e in events][-1] == "Job cancelled at the team's request"


def test_jobs_list_filters_by_status_and_paginates(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    ids = [_create(client, team, training_dataset=dataset["id"]).json()["id"] for _ in range(3)]
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=auth(team))
    page = client.get("/v1/jobs", params={"limit": 2}, headers=auth(team)).json()
    assert [j["id"] for j in page["data"]] == [ids[2], ids[1]]
    assert page["has_more"] is True
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}, headers=auth(team))
    assert [j["id"] for j in cancelled.json()["data"]] == [ids[0]]
    bad = client.get("/v1/jobs", params={"status": "exploded"}, headers=auth(team))
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "status"
