"""Admin team creation, keys and authentication over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import ADMIN, auth, create_team


def test_team_creation_returns_a_working_key_once(client: TestClient) -> None:
    team = create_team(client, "alpha", max_active_jobs=3)
    assert team["id"].startswith("team_")
    assert team["api_key"]["key"].startswith("ftq_sk_")
    assert team["signing_secret"].startswith("whsec_")
    me = client.get("/v1/team", headers=auth(team))
    assert me.status_code == 200
    assert me.json()["name"] == "alpha"
    assert me.json()["max_active_jobs"] == 3
    assert "api_key" not in me.json() and "signing_secret" not in me.json()


def test_admin_routes_need_the_admin_token(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/teams", json={"name": "x"}, headers={"authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_missing_and_wrong_keys_are_401(client: TestClient) -> None:
    assert client.get("/v1/team").status_code == 401
    wrong = client.get("/v1/team", headers={"authorization": "Bearer ftq_sk_wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"


def test_duplicate_team_name_is_409(client: TestClient) -> None:
    create_team(client, "dup")
    again = client.post("/v1/admin/teams", json={"name": "dup"}, headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["error"]["param"] == "name"


def test_revoked_key_stops_working_and_new_key_works(client: TestClient) -> None:
    team = create_team(client, "keys")
    extra = client.post(f"/v1/admin/teams/{team['id']}/keys", headers=ADMIN).json()
    revoked = client.delete(
        f"/v1/admin/teams/{team['id']}/keys/{team['api_key']['id']}", headers=ADMIN
    )
    assert revoked.status_code == 204
    assert client.get("/v1/team", headers=auth(team)).status_code == 401
    assert (
        client.get("/v1/team", headers={"authorization": f"Bearer {extra['key']}"}).status_code
        == 200
    )


def test_keys_are_stored_hashed(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from ftq.shared.models import ApiKey

    team = create_team(client, "hashed")
    stored = session.scalars(select(ApiKey.key_hash)).all()
    assert team["api_key"]["key"] not in stored
    assert all(len(h) == 64 for h in stored)


def test_bad_team_body_names_the_field(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/teams", json={"name": "", "max_active_jobs": 0}, headers=ADMIN
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] in {"name", "max_active_jobs"}


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_team_shows_its_usage_this_month(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    from ftq.shared.datasets import service as datasets
    from tests.factories import chat_jsonl, upload

    team = create_team(client, "usage", monthly_budget_usd="5")
    empty = client.get("/v1/team", headers=auth(team)).json()["usage"]
    assert empty["jobs_created"] == 0 and float(empty["estimated_cost_usd"]) == 0
    assert float(empty["budget_remaining_usd"]) == 5
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    body = {"model": "gpt-4o-mini-2024-07-18", "training_dataset": dataset["id"]}
    job = client.post("/v1/jobs", json=body, headers=auth(team)).json()
    usage = client.get("/v1/team", headers=auth(team)).json()["usage"]
    assert usage["month"] == job["created_at"][:7]
    assert (usage["jobs_created"], usage["active_jobs"], usage["queued_jobs"]) == (1, 1, 1)
    assert usage["estimated_cost_usd"] == job["estimated_cost_usd"]
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(team))
    after = client.get("/v1/team", headers=auth(team)).json()["usage"]
    assert float(after["estimated_cost_usd"]) == 0, "cancelled before submission: no cost"
