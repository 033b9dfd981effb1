"""A revoked key stops working on the very next request, in-process and across server workers."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ftq.shared.serving import free_port
from tests.e2e.stack import BIN, ROOT, Stack, base_env
from tests.factories import ADMIN, auth, create_team
from tests.services import drop_database, fresh_database, postgres_url_or_skip

TEAM_READS = ("/v1/team", "/v1/datasets", "/v1/jobs", "/v1/webhook-endpoints")


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_the_next_request_with_a_revoked_key_is_401(client: TestClient) -> None:
    team = create_team(client, "revoking")
    old = team["api_key"]
    assert client.get("/v1/team", headers=auth(team)).status_code == 200
    new = client.post(f"/v1/admin/teams/{team['id']}/keys", headers=ADMIN).json()
    revoked = client.delete(f"/v1/admin/teams/{team['id']}/keys/{old['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    for path in TEAM_READS:
        response = client.get(path, headers=_bearer(old["key"]))
        assert response.status_code == 401, path
        assert response.json()["error"]["type"] == "authentication_error"
        assert old["key"] not in response.text
        assert client.get(path, headers=_bearer(new["key"])).status_code == 200, path
    again = client.delete(f"/v1/admin/teams/{team['id']}/keys/{old['id']}", headers=ADMIN)
    assert again.status_code in {204, 404}
    assert client.get("/v1/team", headers=_bearer(old["key"])).status_code == 401


def test_a_key_of_another_team_cannot_be_revoked_through_this_team(client: TestClient) -> None:
    a, b = create_team(client, "owner"), create_team(client, "bystander")
    response = client.delete(f"/v1/admin/teams/{b['id']}/keys/{a['api_key']['id']}", headers=ADMIN)
    assert response.status_code == 404
    assert client.get("/v1/team", headers=auth(a)).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn with 3 worker processes on a fresh, migrated Postgres database."""
    postgres_url_or_skip()
    workdir: Path = tmp_path_factory.mktemp("revocation")
    database_url = fresh_database("ftq_security")
    stack = Stack(workdir)
    stack.cleanups.callback(drop_database, database_url)
    try:
        env = base_env(
            workdir / "data",
            FTQ_DATABASE_URL=database_url,
            FTQ_BROKER_URL="memory://",
            FTQ_EMBEDDED_WORKER="false",
            FTQ_EMULATOR_URL="http://127.0.0.1:9/v1",
        )
        migrate = [str(BIN / "ftq"), "migrate"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
        port = free_port()
        app = "ftq.services.api.main:app"
        uvicorn = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
        stack.spawn("api", [*uvicorn, "--workers", "3", "--log-level", "warning"], env)
        stack.url = f"http://127.0.0.1:{port}"
        stack.wait_http(f"{stack.url}/healthz", timeout=90)
        yield stack.url
    finally:
        stack.stop()


def test_revocation_reaches_every_server_worker_at_once(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10, trust_env=False) as http:
        created = http.post("/v1/admin/teams", json={"name": "multi"}, headers=ADMIN)
        assert created.status_code == 201, created.text
        team = created.json()
        key = team["api_key"]
        warm = [http.get("/v1/team", headers=_bearer(key["key"])) for _ in range(20)]
        assert {r.status_code for r in warm} == {200}
        revoked = http.delete(f"/v1/admin/teams/{team['id']}/keys/{key['id']}", headers=ADMIN)
        assert revoked.status_code == 204

    def attempt(_: int) -> int:
        # A fresh connection each time, so the requests spread over the server's processes.
        with httpx.Client(base_url=server, timeout=10, trust_env=False) as fresh:
            return fresh.get("/v1/team", headers=_bearer(key["key"])).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(attempt, range(64)))
    assert set(statuses) == {401}, statuses
