"""Webhook endpoint registration over HTTP: CRUD, secrets, rotation, the SSRF guard."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.models import WebhookEndpoint
from ftq.shared.settings import reset_settings
from ftq.shared.webhooks import ssrf
from tests.factories import auth, create_team

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def no_allowlist() -> Iterator[None]:
    """The production guard: no host is exempt, loopback included."""
    saved = os.environ["FTQ_WEBHOOK_ALLOW_HOSTS"]
    os.environ["FTQ_WEBHOOK_ALLOW_HOSTS"] = "[]"
    reset_settings()
    yield
    os.environ["FTQ_WEBHOOK_ALLOW_HOSTS"] = saved
    reset_settings()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A resolver table for the guard; names not in it resolve with the system resolver."""
    table: dict[str, list[str]] = {}
    real = ssrf.resolve_host

    def resolve(host: str, port: int) -> list[ssrf.IPAddress]:
        if host in table:
            return [ipaddress.ip_address(a) for a in table[host]]
        return real(host, port)

    monkeypatch.setattr(ssrf, "resolve_host", resolve)
    return table


def test_endpoint_secret_is_shown_once_and_stored_encrypted(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    created = client.post(
        "/v1/webhook-endpoints",
        headers=auth(team),
        json={"url": HOOK, "events": ["job.succeeded"], "description": "ops"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("we_") and body["secret"].startswith("whsec_")
    listed = client.get("/v1/webhook-endpoints", headers=auth(team)).json()["data"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    one = client.get(f"/v1/webhook-endpoints/{body['id']}", headers=auth(team))
    assert body["secret"] not in one.text and one.json()["events"] == ["job.succeeded"]
    stored = session.scalars(select(WebhookEndpoint)).one()
    secret_bytes = body["secret"].removeprefix("whsec_")
    assert secret_bytes not in stored.secret_encrypted, "the secret is not stored in clear"


def test_patch_and_delete_an_endpoint(client: TestClient) -> None:
    team = create_team(client)
    endpoint = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=auth(team)).json()
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    patched = client.patch(
        path, json={"events": ["dataset.ready"], "disabled": True}, headers=auth(team)
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["events"], patched.json()["disabled"]) == (["dataset.ready"], True)
    assert client.delete(path, headers=auth(team)).status_code == 204
    assert client.get(path, headers=auth(team)).status_code == 404


def test_another_teams_endpoint_is_404(client: TestClient) -> None:
    owner, other = create_team(client, "owner"), create_team(client, "other")
    endpoint = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=auth(owner)).json()
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert client.get(path, headers=auth(other)).status_code == 404
    assert client.patch(path, json={"disabled": True}, headers=auth(other)).status_code == 404
    assert client.post(f"{path}/rotate-secret", headers=auth(other)).status_code == 404
    assert client.delete(path, headers=auth(other)).status_code == 404


def test_rotate_secret_returns_a_new_secret_once(client: TestClient, session: Session) -> None:
    team = create_team(client)
    endpoint = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=auth(team)).json()
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    rotated = client.post(f"{path}/rotate-secret", headers=auth(team))
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != endpoint["secret"]
    assert new not in client.get(path, headers=auth(team)).text
    stored = session.scalars(select(WebhookEndpoint)).one()
    assert len(stored.previous_secrets) == 1, "the old secret still signs for a day"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://localhost/hook",
        "http://internal.example.com/hook",
        "ftp://example.com/",
    ],
)
def test_registration_refuses_non_public_destinations(
    client: TestClient, no_allowlist: None, dns: dict[str, list[str]], url: str
) -> None:
    dns["internal.example.com"] = ["10.1.2.3"]
    team = create_team(client)
    response = client.post("/v1/webhook-endpoints", json={"url": url}, headers=auth(team))
    assert response.status_code == 422, (url, response.text)
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("url", "invalid_webhook_url")


def test_patch_to_a_private_address_is_refused(
    client: TestClient, no_allowlist: None, dns: dict[str, list[str]]
) -> None:
    dns["hooks.example.com"] = ["93.184.216.34"]
    dns["rebound.example.com"] = ["192.168.1.10"]
    team = create_team(client)
    created = client.post(
        "/v1/webhook-endpoints", json={"url": "https://hooks.example.com/x"}, headers=auth(team)
    )
    assert created.status_code == 201, created.text
    response = client.patch(
        f"/v1/webhook-endpoints/{created.json()['id']}",
        json={"url": "https://rebound.example.com/x"},
        headers=auth(team),
    )
    assert response.status_code == 422
    assert "192.168.1.10" in response.json()["error"]["message"]


def test_unknown_event_type_is_422(client: TestClient) -> None:
    team = create_team(client)
    response = client.post(
        "/v1/webhook-endpoints",
        headers=auth(team),
        json={"url": HOOK, "events": ["job.exploded"]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"].startswith("events")


def test_the_team_signing_secret_rotates_once_shown_and_never_again(client: TestClient) -> None:
    team = create_team(client)
    rotated = client.post("/v1/team/rotate-signing-secret", headers=auth(team))
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["signing_secret"].startswith("whsec_")
    assert body["signing_secret"] != team["signing_secret"]
    assert body["signing_secret"] not in client.get("/v1/team", headers=auth(team)).text
