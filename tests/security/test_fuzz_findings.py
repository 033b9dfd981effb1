"""What the fuzzer found once, pinned: inputs the database cannot store are a 4xx, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import ADMIN, auth, create_team


def test_a_budget_too_large_for_its_column_is_422_naming_it(client: TestClient) -> None:
    response = client.post(
        "/v1/admin/teams", json={"name": "rich", "monthly_budget_usd": 1e20}, headers=ADMIN
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "monthly_budget_usd"


def test_nul_characters_are_refused_not_a_server_error(client: TestClient) -> None:
    team = create_team(client, "nul")
    answers = [
        client.get("/v1/jobs/ftj_a%00b", headers=auth(team)),
        client.get("/v1/datasets?after=ds_%00", headers=auth(team)),
        client.post(
            "/v1/jobs", json={"model": "m", "training_dataset": "ds\x00"}, headers=auth(team)
        ),
        client.post("/v1/admin/teams", json={"name": "a\x00b"}, headers=ADMIN),
    ]
    for response in answers:
        # Postgres refuses NUL in text (422); SQLite stores it and finds nothing (404).
        assert response.status_code in {404, 422}, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert "INSERT" not in error["message"] and "SELECT" not in error["message"]
