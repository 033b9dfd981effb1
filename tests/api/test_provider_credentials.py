"""Per-team provider credentials over HTTP: registered after one cheap call, never shown again,
rotated, revoked, and used for the team's jobs (the gateway's own keys otherwise).

The emulator (a test double of OpenAI) is served on a loopback port; its `/v1` routes take any
key, so the worker's provider clients are observed through `get_provider` to see which key each
was built with. A refused key comes from a tiny server that answers 401 and echoes the key, as
OpenAI's message does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ftq.services.emulator.testing import serve_in_thread
from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.datasets import service as datasets
from ftq.shared.jobs import scheduling
from ftq.shared.models import Job, ProviderCredential
from ftq.shared.providers import registry
from ftq.shared.providers.base import Provider
from ftq.shared.providers.plugins import Credential
from ftq.shared.security import decrypt
from ftq.shared.settings import Settings, reset_settings
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.unit.test_providers_kit import MODEL, Emulator, emulator, fresh_emulator

__all__ = ["emulator", "fresh_emulator"]  # module fixtures from the provider kit

KEY = "sk-team-own-key-0001abcd"
NEW_KEY = "sk-team-own-key-0002wxyz"
NOWHERE = "http://127.0.0.1:9/v1"
CHECK_CALL = "GET /v1/files"
Built = list[tuple[str, Credential | None]]


@pytest.fixture
def served(fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The gateway's emulator provider pointed at an emulator served on a loopback port."""
    monkeypatch.setenv("FTQ_EMULATOR_URL", f"{fresh_emulator.root}/v1")
    reset_settings()
    yield fresh_emulator
    monkeypatch.undo()
    reset_settings()


async def _refuse(request: Request) -> JSONResponse:
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    error = {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}
    return JSONResponse({"error": {**error, "type": "invalid_request_error"}}, status_code=401)


@pytest.fixture(scope="module")
def refusing() -> Iterator[str]:
    """The base URL of a provider that refuses every key with a 401 that echoes it."""
    root, stop = serve_in_thread(Starlette(routes=[Route("/v1/files", _refuse)]))
    yield f"{root}/v1"
    stop()


@pytest.fixture
def worker(session: Session, monkeypatch: pytest.MonkeyPatch) -> Built:
    """The worker's job tasks on the test session; records the key of every client it builds."""
    built: Built = []

    @contextmanager
    def scope() -> Iterator[Session]:
        with session.begin_nested():
            yield session
        session.flush()

    def recording(
        name: str, settings: Settings | None = None, credential: Credential | None = None
    ) -> Provider:
        built.append((name, credential))
        return registry.get_provider(name, settings, credential)

    monkeypatch.setattr(tasks, "session_scope", scope)
    monkeypatch.setattr(tasks, "relay_now", lambda: 0)
    monkeypatch.setattr(tasks, "get_provider", recording)
    return built


def _register(client: TestClient, team: dict[str, Any], **body: Any) -> Any:
    payload = {"provider": "emulator", "key": KEY, **body}
    return client.post("/v1/provider-credentials", json=payload, headers=auth(team))


def _registered(client: TestClient, team: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = _register(client, team, **body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _job(client: TestClient, session: Session, team: dict[str, Any], **body: Any) -> Any:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    payload = {"model": MODEL, "training_dataset": dataset["id"], **body}
    return client.post("/v1/jobs", json=payload, headers=auth(team))


def _submitted(client: TestClient, session: Session, team: dict[str, Any]) -> str:
    """A job of the team that the worker handed to the emulator; its id."""
    response = _job(client, session, team)
    assert response.status_code == 201, response.text
    job_id = str(response.json()["id"])
    admitted = scheduling.schedule(session, "emulator", MODEL)
    assert job_id in [job.id for job in admitted]
    assert tasks.submit_once(job_id) is not None
    return job_id


def _job_view(client: TestClient, team: dict[str, Any], job_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/jobs/{job_id}", headers=auth(team)).json())


# -- registration -------------------------------------------------------------------------------


def test_a_registered_key_is_checked_once_and_never_shown_again(
    client: TestClient, session: Session, served: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    team = create_team(client)
    created = _registered(client, team)
    assert created["object"] == "provider_credential" and created["id"].startswith("pcr_")
    assert created["provider"] == "emulator" and created["key_hint"] == "abcd"
    assert created["rotated_at"] is None and "key" not in created
    assert served.calls(CHECK_CALL) == 1, "one cheap call checked the key"
    listed = client.get("/v1/provider-credentials", headers=auth(team))
    one = client.get(f"/v1/provider-credentials/{created['id']}", headers=auth(team))
    assert [c["id"] for c in listed.json()["data"]] == [created["id"]]
    assert one.json() == created
    row = session.get(ProviderCredential, created["id"])
    assert row is not None and KEY not in row.key_encrypted and decrypt(row.key_encrypted) == KEY
    assert f"registered provider credential {created['id']}" in caplog.text
    for text in (listed.text, one.text, caplog.text):
        assert KEY not in text


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"base_url": NOWHERE}, "base_url", "does not take base_url; it takes key"),
        ({"provider": "openai", "azure_endpoint": "http://127.0.0.1:9"}, "azure_endpoint", "not"),
        ({"provider": "local"}, "provider", "takes no team credentials"),
        ({"provider": "nowhere"}, "provider", "unknown provider"),
        ({"provider": "openai", "base_url": "file:///etc/passwd"}, "base_url", "refused"),
    ],
)
def test_a_field_the_provider_does_not_take_is_a_422_naming_it(
    client: TestClient, body: dict[str, Any], param: str, words: str
) -> None:
    team = create_team(client)
    response = _register(client, team, **body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == param and words in error["message"], error
    assert KEY not in response.text


def test_a_key_that_cannot_be_checked_is_refused_and_nothing_is_kept(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    team = create_team(client)
    response = _register(client, team, provider="openai", base_url=NOWHERE)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("credential_check_failed", "base_url")
    assert "could not be reached" in error["message"] and "nothing was saved" in error["message"]
    assert client.get("/v1/provider-credentials", headers=auth(team)).json()["data"] == []
    assert KEY not in response.text and KEY not in caplog.text


def test_a_refused_key_is_a_400_that_never_echoes_it(
    client: TestClient, refusing: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    team = create_team(client)
    response = _register(client, team, provider="openai", base_url=refusing)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_credential", "key")
    assert "refused this key (401" in error["message"]
    assert KEY not in response.text and KEY not in caplog.text
    assert client.get("/v1/provider-credentials", headers=auth(team)).json()["data"] == []


def test_a_second_active_credential_for_a_provider_is_a_409(
    client: TestClient, served: Emulator
) -> None:
    team = create_team(client)
    first = _registered(client, team)
    again = _register(client, team, key=NEW_KEY)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "credential_exists"
    assert first["id"] in again.json()["error"]["message"]


# -- rotation, revocation, isolation ----------------------------------------------------------


def test_rotation_checks_the_new_key_and_replaces_the_old(
    client: TestClient, session: Session, served: Emulator
) -> None:
    team = create_team(client)
    created = _registered(client, team)
    path = f"/v1/provider-credentials/{created['id']}/rotate"
    rotated = client.post(path, json={"key": NEW_KEY}, headers=auth(team))
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["id"] == created["id"] and body["key_hint"] == "wxyz"
    assert body["rotated_at"] is not None and NEW_KEY not in rotated.text
    assert served.calls(CHECK_CALL) == 2, "the new key was checked too"
    row = session.get(ProviderCredential, created["id"])
    assert row is not None and decrypt(row.key_encrypted) == NEW_KEY


def test_a_revoked_credential_is_gone_and_a_new_one_may_follow(
    client: TestClient, served: Emulator
) -> None:
    team = create_team(client)
    created = _registered(client, team)
    path = f"/v1/provider-credentials/{created['id']}"
    assert client.delete(path, headers=auth(team)).status_code == 204
    assert client.get(path, headers=auth(team)).status_code == 404
    assert client.delete(path, headers=auth(team)).status_code == 404
    assert client.get("/v1/provider-credentials", headers=auth(team)).json()["data"] == []
    assert _registered(client, team, key=NEW_KEY)["key_hint"] == "wxyz"


def test_another_team_can_neither_see_nor_change_a_credential(
    client: TestClient, served: Emulator
) -> None:
    a, b = create_team(client, "team-a"), create_team(client, "team-b")
    created = _registered(client, a)
    path = f"/v1/provider-credentials/{created['id']}"
    assert client.get(path, headers=auth(b)).status_code == 404
    rotate = client.post(f"{path}/rotate", json={"key": NEW_KEY}, headers=auth(b))
    assert rotate.status_code == 404
    assert client.delete(path, headers=auth(b)).status_code == 404
    assert client.get("/v1/provider-credentials", headers=auth(b)).json()["data"] == []
    assert client.get(path, headers=auth(a)).json()["key_hint"] == "abcd"


# -- use ----------------------------------------------------------------------------------------


def test_a_job_records_the_credential_and_is_submitted_with_the_team_key(
    client: TestClient, session: Session, served: Emulator, worker: Built
) -> None:
    team = create_team(client)
    created = _registered(client, team)
    job_id = _submitted(client, session, team)
    row = session.get(Job, job_id)
    assert row is not None and row.credential_id == created["id"]
    assert worker, "the worker built a provider client"
    for name, credential in worker:
        assert name == "emulator" and credential is not None
        assert credential.api_key == KEY and created["id"] in credential.label
        assert KEY not in repr(credential)
    assert served.calls("POST /v1/fine_tuning/jobs") == 1
    assert _job_view(client, team, job_id)["status"] == "submitted"


def test_without_a_credential_the_gateways_own_keys_are_used(
    client: TestClient, session: Session, served: Emulator, worker: Built
) -> None:
    team = create_team(client)
    job_id = _submitted(client, session, team)
    row = session.get(Job, job_id)
    assert row is not None and row.credential_id is None
    assert worker and all(credential is None for _, credential in worker)


def test_a_team_credential_opens_a_provider_the_server_has_no_key_for(
    client: TestClient, session: Session, served: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("FTQ_OPENAI_API_KEY", raising=False)
    reset_settings()
    team = create_team(client)
    refused = _job(client, session, team, provider="openai")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "provider_not_configured"
    created = _registered(client, team, provider="openai", base_url=f"{served.root}/v1")
    accepted = _job(client, session, team, provider="openai")
    assert accepted.status_code == 201, accepted.text
    row = session.get(Job, accepted.json()["id"])
    assert row is not None and (row.provider, row.credential_id) == ("openai", created["id"])


def test_the_sweep_lists_each_teams_jobs_with_that_teams_key(
    client: TestClient, session: Session, served: Emulator, worker: Built
) -> None:
    own, gateway = create_team(client, "own-key"), create_team(client, "gateway-key")
    _registered(client, own)
    _submitted(client, session, own)
    _submitted(client, session, gateway)
    worker.clear()
    report = tasks.sweep_provider("emulator")
    assert report.tracked == 2 and report.errors == 0
    assert report.list_calls == 2, "one job list per key"
    keys = sorted((c.api_key if c else "gateway") for _, c in worker)
    assert keys == ["gateway", KEY]


def test_revocation_fails_a_running_job_at_its_next_call_with_the_reason(
    client: TestClient, session: Session, served: Emulator, worker: Built
) -> None:
    team = create_team(client)
    created = _registered(client, team)
    polled, swept = _submitted(client, session, team), _submitted(client, session, team)
    revoked = client.delete(f"/v1/provider-credentials/{created['id']}", headers=auth(team))
    assert revoked.status_code == 204
    calls_before = served.requests_total()
    assert tasks.poll(polled) is None
    report = tasks.sweep_provider("emulator")
    assert report.tracked == 1 and report.list_calls == 0
    assert served.requests_total() == calls_before, "the revoked key was never used again"
    for job_id in (polled, swept):
        view = _job_view(client, team, job_id)
        assert view["status"] == "failed", view
        assert view["error"]["code"] == "provider_unavailable"
        message = view["error"]["message"]
        assert created["id"] in message and "was revoked at" in message
        assert KEY not in message


def test_a_queued_job_whose_credential_was_revoked_fails_at_submission(
    client: TestClient, session: Session, served: Emulator, worker: Built
) -> None:
    team = create_team(client)
    created = _registered(client, team)
    response = _job(client, session, team)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    client.delete(f"/v1/provider-credentials/{created['id']}", headers=auth(team))
    assert job_id in [job.id for job in scheduling.schedule(session, "emulator", MODEL)]
    assert tasks.submit.apply(args=[job_id]).get() is None
    view = _job_view(client, team, job_id)
    assert (view["status"], view["error"]["code"]) == ("failed", "provider_unavailable")
    assert "was revoked at" in view["error"]["message"]
    assert served.calls("POST /v1/fine_tuning/jobs") == 0
