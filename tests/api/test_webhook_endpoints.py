"""Webhook endpoint registration over HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import auth, create_team


def test_endpoint_secret_is_shown_once(client: TestClient) -> None:
    team = create_team(client)
    created = client.post(
        "/v1/webhook-endpoints",
        headers=auth(team),
        json={"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("we_")
    assert body["secret"].startswith("whsec_")
    listed = client.get("/v1/webhook-endpoints", headers=auth(team)).json()["data"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert (
        body["secret"]
        not in client.get(f"/v1/webhook-endpoints/{body['id']}", headers=auth(team)).text
    )


def test_private_address_is_refused(client: TestClient) -> None:
    team = create_team(client)
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest", "ftp://example.com/"):
        response = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth(team))
        assert response.status_code == 422, url
        assert response.json()["error"]["param"] == "url"


def test_unknown_event_type_is_422(client: TestClient) -> None:
    team = create_team(client)
    response = client.post(
        "/v1/webhook-endpoints",
        headers=auth(team),
        json={"url": "http://127.0.0.1:9/hook", "events": ["job.exploded"]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"].startswith("events")
