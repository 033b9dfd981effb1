"""Every route needs the right credential: a table over the app's own routes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ftq.services.api.main import create_app
from ftq.shared.settings import reset_settings
from ftq.shared.webhooks.signing import generate_secret
from tests.factories import ADMIN, auth, create_team
from tests.security.routes import PUBLIC, Route, app_routes, protected_routes

APP = create_app()
ROUTES = protected_routes(APP)
ADMIN_ROUTES = [r for r in ROUTES if r.is_admin]
TEAM_ROUTES = [r for r in ROUTES if not r.is_admin]
# Ids of the right shape that belong to nobody: authentication is decided before any lookup.
FILLER = {"team_id": "team_nobody", "key_id": "key_nobody"}


def _url(route: Route) -> str:
    return route.url({name: FILLER.get(name, "x_nobody") for name in route.params})


def _call(client: TestClient, route: Route, headers: dict[str, str] | None = None) -> Any:
    return client.request(route.method, _url(route), headers=headers or {})


def _assert_refused(response: Any, route: Route, statuses: set[int]) -> None:
    assert response.status_code in statuses, f"{route}: {response.status_code} {response.text}"
    error = response.json()["error"]
    assert error["type"] == "authentication_error", (str(route), error)
    assert set(error) == {"type", "code", "message", "param"}


def test_the_table_covers_the_api() -> None:
    every = {str(r) for r in app_routes(APP)}
    for known in (
        "POST /v1/admin/teams",
        "GET /v1/team",
        "POST /v1/datasets",
        "GET /v1/jobs/{job_id}",
        "DELETE /v1/webhook-endpoints/{endpoint_id}",
        "POST /v1/webhook-deliveries/{delivery_id}/redeliver",
    ):
        assert known in every
    # Routes hidden from the schema are in the table too.
    assert "GET /v1/jobs/{job_id}/metrics.svg" in every
    assert {f"{m} {p}" for m, p in PUBLIC} & every
    assert len(ROUTES) >= 25


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_no_key_is_401(client: TestClient, route: Route) -> None:
    _assert_refused(_call(client, route), route, {401})


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_wrong_key_is_401(client: TestClient, route: Route) -> None:
    for header in ("Bearer ftq_sk_not_a_real_key", "Bearer ", "Basic ZnRxOmZ0cQ==", "ftq_sk_x"):
        _assert_refused(_call(client, route, {"authorization": header}), route, {401})


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=str)
def test_a_team_key_never_opens_an_admin_route(client: TestClient, route: Route) -> None:
    team = create_team(client, "not-an-admin")
    _assert_refused(_call(client, route, auth(team)), route, {401, 403})


@pytest.mark.parametrize("route", TEAM_ROUTES, ids=str)
def test_the_admin_token_never_opens_a_team_route(client: TestClient, route: Route) -> None:
    _assert_refused(_call(client, route, ADMIN), route, {401, 403})


PUBLIC_GETS = [r.path for r in app_routes(APP) if r.method == "GET" and ("GET", r.path) in PUBLIC]


@pytest.mark.parametrize("path", PUBLIC_GETS)
def test_public_routes_answer_without_a_key(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in {200, 503}, (path, response.status_code)


def test_the_provider_webhook_refuses_an_unsigned_call(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTQ_OPENAI_WEBHOOK_SECRET", generate_secret())
    reset_settings()
    try:
        for headers in ({}, {**ADMIN}, {"webhook-id": "wh_1", "webhook-signature": "v1,Zm9v"}):
            response = client.post(
                "/v1/provider-webhooks/openai",
                content=b'{"type": "fine_tuning.job.succeeded", "data": {"id": "ftjob-1"}}',
                headers={"content-type": "application/json", **headers},
            )
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "invalid_signature"
    finally:
        monkeypatch.undo()
        reset_settings()
