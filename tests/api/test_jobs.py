"""Job creation, tenancy, quotas, cancel and events over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import scheduling, sync
from ftq.shared.models import Job
from ftq.shared.providers.base import ProviderCheckpoint, ProviderEvent, ProviderJob
from ftq.shared.storage import get_blob_store
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
    assert ("jobs.schedule", ["emulator", MODEL]) in sent_tasks
    admitted = scheduling.schedule(session, "emulator", MODEL)
    assert [j.id for j in admitted] == [job["id"]]
    read = client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).json()
    assert (read["status"], read["queue_position"]) == ("uploading", None)
    from ftq.services.api import uow

    uow.send_own()
    assert ("jobs.submit", [job["id"]]) in sent_tasks


def test_job_waits_for_validation_then_is_released(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12)).json()
    job = _create(client, team, training_dataset=dataset["id"]).json()
    assert job["status"] == "queued"
    assert "jobs.schedule" not in sent_tasks.names()
    datasets.run_validation(session, dataset["id"])
    session.flush()
    from ftq.services.api import uow

    uow.send_own()
    assert ("jobs.schedule", ["emulator", MODEL]) in sent_tasks


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


def _db_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    assert job is not None
    return job


def test_queue_positions_follow_the_fair_order_across_teams(
    client: TestClient, session: Session
) -> None:
    team_a, team_b = create_team(client, "qa"), create_team(client, "qb")
    data_a = _ready_dataset(client, session, team_a)
    data_b = _ready_dataset(client, session, team_b)
    a1 = _create(client, team_a, training_dataset=data_a["id"]).json()
    a2 = _create(client, team_a, training_dataset=data_a["id"]).json()
    b1 = _create(client, team_b, training_dataset=data_b["id"]).json()
    positions = {
        j["id"]: j["queue_position"]
        for team in (team_a, team_b)
        for j in client.get("/v1/jobs", headers=auth(team)).json()["data"]
    }
    assert positions == {a1["id"]: 1, b1["id"]: 2, a2["id"]: 3}
    one = client.get(f"/v1/jobs/{a2['id']}", headers=auth(team_a)).json()
    assert one["queue_position"] == 3


def test_cancelling_a_job_that_holds_a_slot_hands_the_slot_on(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    job = _create(client, team, training_dataset=dataset["id"]).json()
    scheduling.schedule(session, "emulator", MODEL)
    sent_tasks.clear()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(team)).status_code == 200
    assert ("jobs.schedule", ["emulator", MODEL]) in sent_tasks


def test_unknown_or_unconfigured_provider_is_422(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    for provider in ("together", "azure-openai"):
        response = _create(client, team, training_dataset=dataset["id"], provider=provider)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == "provider"


def test_budget_is_enforced_at_creation_and_when_the_cost_becomes_known(
    client: TestClient, session: Session
) -> None:
    team = create_team(client, "thrifty", monthly_budget_usd="0.02")
    dataset = _ready_dataset(client, session, team)
    cost = float(dataset["report"]["estimated_cost_usd"])
    assert 0.01 < cost <= 0.02, cost
    assert _create(client, team, training_dataset=dataset["id"]).status_code == 201
    second = _create(client, team, training_dataset=dataset["id"])
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "budget_exceeded"
    assert "monthly budget of $0.02" in second.json()["error"]["message"]

    pending = upload(client, team, chat_jsonl(12, offset=100)).json()  # cost not known yet
    job = _create(client, team, training_dataset=pending["id"]).json()
    datasets.run_validation(session, pending["id"])
    read = client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).json()
    assert (read["status"], read["error"]["code"]) == ("failed", "budget_exceeded")


def test_validation_split_cuts_a_seeded_validation_dataset(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    source = _ready_dataset(client, session, team, chat_jsonl(16))
    job = _create(client, team, training_dataset=source["id"], validation_split=0.25, seed=7)
    assert job.status_code == 201, job.text
    body = job.json()
    assert body["validation_split"] == 0.25
    train_id, valid_id = body["training_dataset"], body["validation_dataset"]
    assert source["id"] not in (train_id, valid_id) and valid_id
    assert body["status"] == "queued"
    for dataset_id in (train_id, valid_id):
        datasets.run_validation(session, dataset_id)
    train = client.get(f"/v1/datasets/{train_id}", headers=auth(team)).json()
    valid = client.get(f"/v1/datasets/{valid_id}", headers=auth(team)).json()
    assert (train["n_examples"], valid["n_examples"]) == (12, 4)
    assert valid["status"] == "invalid", "under 10 examples: too few to train on"
    assert client.get(f"/v1/jobs/{body['id']}", headers=auth(team)).json()["status"] == "queued"
    from ftq.services.api import uow

    uow.send_own()
    assert ("jobs.schedule", ["emulator", MODEL]) in sent_tasks
    again = _create(client, team, training_dataset=source["id"], validation_split=0.25, seed=7)
    assert again.json()["validation_dataset"] == valid_id, "the same seed cuts the same split"
    both = _create(
        client,
        team,
        training_dataset=source["id"],
        validation_split=0.2,
        validation_dataset=valid_id,
    )
    assert both.status_code == 422


def test_pause_and_resume_reach_the_provider_through_the_worker(
    client: TestClient, session: Session, sent_tasks: SentTasks
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    job = _create(client, team, training_dataset=dataset["id"]).json()
    queued = client.post(f"/v1/jobs/{job['id']}/pause", headers=auth(team))
    assert queued.status_code == 409
    assert queued.json()["error"]["code"] == "job_not_pausable"
    row = _db_job(session, job["id"])
    row.status, row.provider_job_id, row.provider_status = "running", "ftjob-x", "running"
    session.flush()
    assert client.post(f"/v1/jobs/{job['id']}/resume", headers=auth(team)).status_code == 409
    paused = client.post(f"/v1/jobs/{job['id']}/pause", headers=auth(team))
    assert paused.status_code == 202
    assert ("jobs.control_at_provider", [job["id"], "pause"]) in sent_tasks
    row.provider_status = "paused"
    session.flush()
    assert client.post(f"/v1/jobs/{job['id']}/resume", headers=auth(team)).status_code == 202
    assert ("jobs.control_at_provider", [job["id"], "resume"]) in sent_tasks


def test_metrics_checkpoints_and_result_file_are_served(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    job = _create(client, team, training_dataset=dataset["id"]).json()
    path = f"/v1/jobs/{job['id']}"
    assert client.get(f"{path}/result-file", headers=auth(team)).status_code == 404
    row = _db_job(session, job["id"])
    row.status, row.provider_job_id = "running", "ftjob-1"
    session.flush()
    steps = [
        ProviderEvent(
            id=f"ftevent-{i}",
            created_at=i,
            level="info",
            message=f"Step {i}/2",
            type="metrics",
            data={"step": i, "total_steps": 2, "train_loss": 1.0 / i},
        )
        for i in (1, 2)
    ]
    checkpoint = ProviderCheckpoint(
        id="ftckpt_1", step_number=2, fine_tuned_model_checkpoint="ft:m:o::x", metrics={"step": 2}
    )
    csv = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.0,0.5,,\n"
    get_blob_store().write_bytes("results/test.csv", csv)
    done = ProviderJob(
        id="ftjob-1", status="succeeded", fine_tuned_model="ft:m:o::x", result_files=("file-r",)
    )
    result = sync.ResultFile(file_id="file-r", blob_key="results/test.csv", content=csv)
    sync.apply_provider_state(
        session, job["id"], done, steps, checkpoints=[checkpoint], result=result
    )
    metrics = client.get(f"{path}/metrics", headers=auth(team)).json()["data"]
    assert [(m["step"], m["train_loss"]) for m in metrics] == [(1, 1.0), (2, 0.5)]
    checkpoints = client.get(f"{path}/checkpoints", headers=auth(team)).json()["data"]
    assert [c["fine_tuned_model_checkpoint"] for c in checkpoints] == ["ft:m:o::x"]
    read = client.get(path, headers=auth(team)).json()
    assert read["status"] == "succeeded"
    assert read["result_file"] == {
        "provider_file_id": "file-r",
        "bytes": len(csv),
        "url": f"{path}/result-file",
    }
    download = client.get(f"{path}/result-file", headers=auth(team))
    assert download.status_code == 200 and download.content == csv
    other = create_team(client, "other")
    assert client.get(f"{path}/checkpoints", headers=auth(other)).status_code == 404


def test_lora_settings_are_refused_unless_the_provider_is_local(
    client: TestClient, session: Session, monkeypatch: Any
) -> None:
    from ftq.shared.jobs.schemas import Method
    from ftq.shared.settings import get_settings

    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    for name, value in (("lora_rank", 8), ("lora_target_modules", ["q_proj"])):
        method = {"type": "supervised", "hyperparameters": {name: value}}
        response = _create(client, team, training_dataset=dataset["id"], method=method)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == f"method.hyperparameters.{name}"
    method = Method.model_validate(
        {"type": "supervised", "hyperparameters": {"n_epochs": 2, "lora_rank": 8}}
    )
    assert method.to_provider("openai") == {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {
                "n_epochs": 2,
                "batch_size": "auto",
                "learning_rate_multiplier": "auto",
            }
        },
    }
    assert method.to_provider("local")["supervised"]["hyperparameters"]["lora_rank"] == 8
    monkeypatch.setattr(get_settings(), "local_enabled", False)
    body = {"type": "supervised", "hyperparameters": {"lora_rank": 8}}
    refused = _create(client, team, training_dataset=dataset["id"], provider="local", method=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["param"] == "provider"
    monkeypatch.setattr(get_settings(), "local_enabled", True)  # the API image has no torch
    monkeypatch.setattr(get_settings(), "local_models", {"tiny": "/models/tiny"})
    created = _create(
        client, team, model="tiny", training_dataset=dataset["id"], provider="local", method=body
    )
    assert created.status_code == 201, created.text
    assert created.json()["method"]["hyperparameters"]["lora_rank"] == 8


def test_openai_jobs_after_the_wind_down_are_422_and_near_retirement_are_warned(
    client: TestClient, session: Session, monkeypatch: Any
) -> None:
    from datetime import UTC, datetime

    from ftq.shared.jobs import lifecycle
    from ftq.shared.jobs import service as jobs

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    monkeypatch.setattr(jobs, "utcnow", lambda: datetime(2027, 1, 7, tzinfo=UTC))
    closed = _create(client, team, training_dataset=dataset["id"], provider="openai")
    assert closed.status_code == 422, closed.text
    error = closed.json()["error"]
    assert (error["code"], error["param"]) == ("model_closed", "model")
    assert "2027-01-06" in error["message"] and "emulator" in error["message"]
    assert client.get("/v1/jobs", headers=auth(team)).json()["data"] == [], "nothing written"

    monkeypatch.setattr(jobs, "utcnow", lambda: datetime(2026, 12, 20, tzinfo=UTC))
    monkeypatch.setattr(lifecycle, "utcnow", lambda: datetime(2026, 12, 20, tzinfo=UTC))
    created = _create(client, team, training_dataset=dataset["id"], provider="openai")
    assert created.status_code == 201, created.text
    events = client.get(f"/v1/jobs/{created.json()['id']}/events", headers=auth(team)).json()
    warned = [e for e in events["data"] if e["level"] == "warn"]
    assert warned and "stop serving at openai on 2027-01-14" in warned[0]["message"]
    job = session.get(Job, created.json()["id"])
    assert job is not None
    assert "2027-01-14" in lifecycle.job_payload(job)["warnings"][0], "the webhooks carry it"
