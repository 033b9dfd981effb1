"""OpenAI's own signed `fine_tuning.job.*` webhooks trigger an immediate sync of that job."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from ftq.shared.settings import reset_settings
from ftq.shared.webhooks.signing import generate_secret
from tests.conftest import SentTasks
from tests.factories import job_row, team_row

PATH = "/v1/provider-webhooks/openai"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """FTQ_OPENAI_WEBHOOK_SECRET set to a fresh whsec_ secret."""
    value = generate_secret()
    monkeypatch.setenv("FTQ_OPENAI_WEBHOOK_SECRET", value)
    reset_settings()
    yield value
    monkeypatch.undo()
    reset_settings()


def _event(provider_job_id: str, kind: str = "fine_tuning.job.succeeded") -> dict[str, Any]:
    return {
        "id": "evt_abc",
        "object": "event",
        "created_at": int(time.time()),
        "type": kind,
        "data": {"id": provider_job_id},
    }


def _signed(secret: str, body: bytes, msg_id: str = "wh_1") -> dict[str, str]:
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def test_a_signed_event_syncs_that_job_now(
    client: TestClient, session: Session, sent_tasks: SentTasks, secret: str
) -> None:
    team, _ = team_row(session)
    job = job_row(session, team, provider_job_id="ftjob-hooked")
    job.provider = "openai"
    session.flush()
    body = json.dumps(_event("ftjob-hooked")).encode()
    response = client.post(PATH, content=body, headers=_signed(secret, body))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "action": "sync", "job": job.id}
    assert ("jobs.poll", [job.id]) in sent_tasks


def test_bad_or_missing_signatures_are_401(
    client: TestClient, session: Session, sent_tasks: SentTasks, secret: str
) -> None:
    body = json.dumps(_event("ftjob-hooked")).encode()
    wrong = _signed(generate_secret(), body)
    for headers in (wrong, {"content-type": "application/json"}):
        response = client.post(PATH, content=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"
    tampered = _signed(secret, body)
    response = client.post(PATH, content=body.replace(b"hooked", b"hacked"), headers=tampered)
    assert response.status_code == 401
    stale = _signed(secret, body)
    stale["webhook-timestamp"] = str(int(time.time()) - 3600)
    assert client.post(PATH, content=body, headers=stale).status_code == 401
    assert "jobs.poll" not in sent_tasks.names()


def test_signed_garbage_is_400_and_unknown_jobs_are_acknowledged(
    client: TestClient, session: Session, sent_tasks: SentTasks, secret: str
) -> None:
    garbage = b"not json"
    assert client.post(PATH, content=garbage, headers=_signed(secret, garbage)).status_code == 400
    no_id = json.dumps({"type": "fine_tuning.job.failed", "data": {}}).encode()
    response = client.post(PATH, content=no_id, headers=_signed(secret, no_id))
    assert response.status_code == 400 and response.json()["error"]["param"] == "data.id"
    unknown = json.dumps(_event("ftjob-not-ours")).encode()
    response = client.post(PATH, content=unknown, headers=_signed(secret, unknown))
    assert response.json() == {"received": True, "action": "ignored"}
    other = json.dumps({"type": "response.completed", "data": {"id": "resp_1"}}).encode()
    assert client.post(PATH, content=other, headers=_signed(secret, other)).status_code == 200
    assert "jobs.poll" not in sent_tasks.names()


def test_without_a_configured_secret_the_endpoint_is_503(client: TestClient) -> None:
    body = json.dumps(_event("ftjob-1")).encode()
    response = client.post(PATH, content=body, headers=_signed(generate_secret(), body))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_webhooks_not_configured"
