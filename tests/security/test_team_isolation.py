"""Team isolation: another team's resource is a 404 on every route, never a leak or a change."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.services.api.main import create_app
from ftq.shared.datasets import service as datasets
from ftq.shared.ids import new_id
from ftq.shared.jobs import sync
from ftq.shared.models import Job, ProviderCredential
from ftq.shared.providers.base import ProviderCheckpoint, ProviderEvent, ProviderJob
from ftq.shared.security import encrypt
from ftq.shared.storage import get_blob_store
from ftq.shared.webhooks import service as webhooks
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.security.routes import Route, protected_routes

MODEL = "gpt-4o-mini-2024-07-18"
TEAM_ROUTES = [r for r in protected_routes(create_app()) if not r.is_admin]
ROUTES_WITH_IDS = [r for r in TEAM_ROUTES if r.params]
# Valid bodies, so that the answer is about ownership rather than a malformed request.
BODIES: dict[str, Any] = {
    "POST /v1/datasets/{dataset_id}/convert": {"to": "chat"},
    "POST /v1/datasets/{dataset_id}/split": {"fraction": 0.2},
    "PATCH /v1/webhook-endpoints/{endpoint_id}": {"disabled": True},
    "POST /v1/provider-credentials/{credential_id}/rotate": {"key": "sk-rotated-by-team-b"},
}


def _owned_by_a(client: TestClient, session: Session, team: dict[str, Any]) -> dict[str, str]:
    """One of every kind of resource, owned by team A, with events, metrics and checkpoints."""
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    endpoint = client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=auth(team)
    ).json()
    job = client.post(
        "/v1/jobs", json={"model": MODEL, "training_dataset": dataset["id"]}, headers=auth(team)
    ).json()
    row = session.get(Job, job["id"])
    assert row is not None
    row.status, row.provider_job_id = "running", "ftjob-iso"
    session.flush()
    steps = [
        ProviderEvent(
            id=f"ftevent-iso-{i}",
            created_at=i,
            level="info",
            message=f"Step {i}/2",
            type="metrics",
            data={"step": i, "total_steps": 2, "train_loss": 1.0 / i},
        )
        for i in (1, 2)
    ]
    checkpoint = ProviderCheckpoint(
        id="ftckpt_iso", step_number=2, fine_tuned_model_checkpoint="ft:m:o::iso", metrics={}
    )
    csv = b"step,train_loss\n1,1.0\n"
    get_blob_store().write_bytes("results/iso.csv", csv)
    done = ProviderJob(
        id="ftjob-iso", status="succeeded", fine_tuned_model="ft:m:o::iso", result_files=("f",)
    )
    result = sync.ResultFile(file_id="f", blob_key="results/iso.csv", content=csv)
    sync.apply_provider_state(
        session, job["id"], done, steps, checkpoints=[checkpoint], result=result
    )
    webhooks.emit(session, team["id"], "job.running", {"id": job["id"]}, job=row)
    session.flush()
    evaluation = client.post(
        "/v1/evals",
        json={"dataset": dataset["id"], "models": [MODEL], "grader": "exact"},
        headers=auth(team),
    )
    assert evaluation.status_code == 201, evaluation.text
    deliveries = client.get("/v1/webhook-deliveries", headers=auth(team)).json()["data"]
    assert deliveries, "no delivery was recorded for team A"
    credential = ProviderCredential(
        id=new_id("pcr"),
        team_id=team["id"],
        provider="emulator",
        key_encrypted=encrypt("sk-team-a-own-key"),
        key_hint="-key",
    )
    session.add(credential)
    session.flush()
    sweep = client.post(
        "/v1/sweeps",
        json={
            "base": {"model": MODEL, "training_dataset": dataset["id"]},
            "search": {"space": {"n_epochs": [1]}},
            "eval": {"dataset": dataset["id"]},
        },
        headers=auth(team),
    )
    assert sweep.status_code == 201, sweep.text
    schedule = client.post(
        "/v1/eval-schedules",
        json={"model": MODEL, "dataset": dataset["id"], "grader": "exact", "cron": "@daily"},
        headers=auth(team),
    )
    assert schedule.status_code == 201, schedule.text
    return {
        "schedule_id": schedule.json()["id"],
        "sweep_id": sweep.json()["id"],
        "dataset_id": dataset["id"],
        "job_id": job["id"],
        "endpoint_id": endpoint["id"],
        "delivery_id": deliveries[0]["id"],
        "eval_id": evaluation.json()["id"],
        "credential_id": credential.id,
        "name": "adapter_model.safetensors",  # a file of a job's artifacts
        # The OpenAI-compatible routes name the same resources by OpenAI's ids.
        "file_id": "file-" + dataset["id"].removeprefix("ds_"),
        "fine_tuning_job_id": "ftjob-" + job["id"].removeprefix("ftj_"),
        "model": "ft:m:o::iso",  # the job's fine-tuned model
    }


@pytest.fixture
def world(client: TestClient, session: Session) -> dict[str, Any]:
    a = create_team(client, "team-a")
    b = create_team(client, "team-b")
    return {"a": a, "b": b, "ids": _owned_by_a(client, session, a)}


# ftq's code, and OpenAI's own on the OpenAI-compatible routes.
NOT_FOUND_CODES = {"not_found", "fine_tune_not_found", "model_not_found"}


def _call(client: TestClient, route: Route, ids: dict[str, str], team: dict[str, Any]) -> Any:
    missing = [p for p in route.params if p not in ids]
    assert not missing, f"{route}: add a team-A resource for {missing} to _owned_by_a"
    return client.request(
        route.method, route.url(ids), json=BODIES.get(str(route)), headers=auth(team)
    )


def test_team_a_sees_its_own_resources(client: TestClient, world: dict[str, Any]) -> None:
    for route in ROUTES_WITH_IDS:
        if route.method == "GET":
            response = _call(client, route, world["ids"], world["a"])
            if response.status_code != 200:
                # e.g. artifacts exist only for local jobs: still A's answer is not B's.
                stranger = _call(client, route, world["ids"], world["b"])
                assert response.json() != stranger.json(), f"{route}: {response.text}"
    for path in ("events", "metrics", "checkpoints"):
        listed = client.get(f"/v1/jobs/{world['ids']['job_id']}/{path}", headers=auth(world["a"]))
        assert listed.json()["data"], path


def test_team_b_gets_404_on_every_route_to_team_a_resources(
    client: TestClient, world: dict[str, Any]
) -> None:
    for route in ROUTES_WITH_IDS:
        response = _call(client, route, world["ids"], world["b"])
        assert response.status_code == 404, f"{route}: {response.status_code} {response.text}"
        error = response.json()["error"]
        assert error["code"] in NOT_FOUND_CODES, (str(route), error)
        # The answer is the one for an id that never existed: it names nothing of A's.
        assert world["a"]["id"] not in response.text, str(route)
        nobody = {name: f"{value[:3]}nobody" for name, value in world["ids"].items()}
        missing = _call(client, route, nobody, world["b"])
        assert missing.status_code == response.status_code, str(route)


def test_team_b_changed_nothing_of_team_a(client: TestClient, world: dict[str, Any]) -> None:
    for route in ROUTES_WITH_IDS:
        if route.method != "GET":
            _call(client, route, world["ids"], world["b"])
    a, ids = world["a"], world["ids"]
    assert client.get(f"/v1/datasets/{ids['dataset_id']}", headers=auth(a)).status_code == 200
    endpoint = client.get(f"/v1/webhook-endpoints/{ids['endpoint_id']}", headers=auth(a)).json()
    assert endpoint["disabled"] is False
    job = client.get(f"/v1/jobs/{ids['job_id']}", headers=auth(a)).json()
    assert job["status"] == "succeeded"
    credential = client.get(f"/v1/provider-credentials/{ids['credential_id']}", headers=auth(a))
    assert credential.status_code == 200 and credential.json()["key_hint"] == "-key"
    schedule = client.get(f"/v1/eval-schedules/{ids['schedule_id']}", headers=auth(a))
    assert schedule.status_code == 200 and schedule.json()["status"] == "active"


def test_team_b_lists_show_nothing_of_team_a(client: TestClient, world: dict[str, Any]) -> None:
    b, ids = world["b"], world["ids"]
    for route in TEAM_ROUTES:
        if route.method == "GET" and not route.params:
            response = client.get(route.path, headers=auth(b))
            assert response.status_code == 200, f"{route}: {response.text}"
            for value in (*ids.values(), world["a"]["id"]):
                assert value not in response.text, (str(route), value)
    by_job = client.get(f"/v1/webhook-deliveries?job={ids['job_id']}", headers=auth(b))
    assert by_job.status_code == 404 or by_job.json()["data"] == []
    by_endpoint = client.get(
        f"/v1/webhook-deliveries?endpoint={ids['endpoint_id']}", headers=auth(b)
    )
    assert by_endpoint.status_code == 404 or by_endpoint.json()["data"] == []


def test_team_b_cannot_train_on_team_a_datasets(client: TestClient, world: dict[str, Any]) -> None:
    dataset = world["ids"]["dataset_id"]
    for body in (
        {"training_dataset": dataset},
        {"training_dataset": dataset, "validation_dataset": dataset},
    ):
        response = client.post("/v1/jobs", json={"model": MODEL, **body}, headers=auth(world["b"]))
        assert response.status_code == 404, response.text
        assert response.json()["error"]["param"] in {"training_dataset", "validation_dataset"}
