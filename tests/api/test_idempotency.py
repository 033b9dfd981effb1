"""Idempotency-Key on create POSTs: replay, reuse refused, in progress, per team, 24 h."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.idempotency.repository import _lock_id
from ftq.shared.models import Dataset, IdempotencyKey
from ftq.shared.timeutil import utcnow
from tests.conftest import TEST_DATABASE_URL
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"
HOOK = "http://127.0.0.1:9/hook"


def _key(team: dict[str, Any], key: str) -> dict[str, str]:
    return {**auth(team), "Idempotency-Key": key}


def _ready_dataset(client: TestClient, session: Session, team: dict[str, Any]) -> str:
    dataset_id = str(upload(client, team, chat_jsonl(12)).json()["id"])
    datasets.run_validation(session, dataset_id)
    return dataset_id


def _post_job(client: TestClient, team: dict[str, Any], key: str, **body: Any) -> Any:
    return client.post("/v1/jobs", json={"model": MODEL, **body}, headers=_key(team, key))


def test_same_key_and_body_replays_the_first_job(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    first = _post_job(client, team, "job-1", training_dataset=dataset, suffix="a")
    second = _post_job(client, team, "job-1", training_dataset=dataset, suffix="a")
    assert first.status_code == second.status_code == 201, first.text
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    listed = client.get("/v1/jobs", headers=auth(team)).json()["data"]
    assert [job["id"] for job in listed] == [first.json()["id"]]


def test_same_key_with_another_body_is_a_conflict(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    assert _post_job(client, team, "k", training_dataset=dataset, suffix="a").status_code == 201
    reused = _post_job(client, team, "k", training_dataset=dataset, suffix="b")
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert reused.json()["error"]["param"] == "Idempotency-Key"
    other_path = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=_key(team, "k"))
    assert other_path.json()["error"]["code"] == "idempotency_key_reused"


def test_keys_are_scoped_per_team(client: TestClient, session: Session) -> None:
    one, two = create_team(client, "one"), create_team(client, "two")
    first = _post_job(client, one, "shared", training_dataset=_ready_dataset(client, session, one))
    second = _post_job(client, two, "shared", training_dataset=_ready_dataset(client, session, two))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers


def test_a_failed_request_does_not_use_up_its_key(client: TestClient, session: Session) -> None:
    team = create_team(client)
    missing = _post_job(client, team, "retry-me", training_dataset="ds_missing")
    assert missing.status_code == 404
    fixed = _post_job(
        client, team, "retry-me", training_dataset=_ready_dataset(client, session, team)
    )
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


def test_keys_expire_after_24_hours(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _ready_dataset(client, session, team)
    first = _post_job(client, team, "old", training_dataset=dataset, suffix="a")
    row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "old"))
    assert row is not None
    assert row.expires_at - row.created_at == timedelta(hours=24)
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.flush()
    again = _post_job(client, team, "old", training_dataset=dataset, suffix="b")
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]


def test_upload_replays_by_uploaded_bytes(client: TestClient, session: Session) -> None:
    team = create_team(client)
    files = lambda content: {"file": ("train.jsonl", content, "application/jsonl")}  # noqa: E731
    post = lambda content, key: client.post(  # noqa: E731
        "/v1/datasets", files=files(content), headers=_key(team, key)
    )
    first = post(chat_jsonl(12), "up-1")
    replay = post(chat_jsonl(12), "up-1")
    assert first.status_code == replay.status_code == 201, first.text
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    reused = post(chat_jsonl(13), "up-1")
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert session.scalar(select(func.count()).select_from(Dataset)) == 1
    # The same bytes without a key still dedupe to the existing dataset (200), as before.
    plain = upload(client, team, chat_jsonl(12))
    assert (plain.status_code, plain.json()["id"]) == (200, first.json()["id"])


def test_endpoint_secret_is_replayed_but_never_stored_in_clear(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    body = {"url": HOOK, "events": ["job.succeeded"]}
    first = client.post("/v1/webhook-endpoints", json=body, headers=_key(team, "hook"))
    again = client.post("/v1/webhook-endpoints", json=body, headers=_key(team, "hook"))
    assert first.status_code == again.status_code == 201, first.text
    assert again.json()["secret"] == first.json()["secret"]
    assert first.json()["secret"].startswith("whsec_")
    assert len(client.get("/v1/webhook-endpoints", headers=auth(team)).json()["data"]) == 1
    stored = session.scalar(select(IdempotencyKey.response_body))
    assert stored is not None and "whsec_" not in stored


def test_malformed_key_is_a_400(client: TestClient) -> None:
    team = create_team(client)
    response = client.post(
        "/v1/webhook-endpoints", json={"url": HOOK}, headers=_key(team, "x" * 300)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


@pytest.mark.skipif(not TEST_DATABASE_URL.startswith("postgresql"), reason="needs Postgres")
def test_duplicate_while_the_first_is_in_flight_is_a_409(
    client: TestClient, session: Session, engine: Engine
) -> None:
    team = create_team(client)
    team_id = team["id"]
    with engine.connect() as other, other.begin():
        # Another API process is inside its create transaction with this key.
        assert other.scalar(select(func.pg_try_advisory_xact_lock(_lock_id(team_id, "busy"))))
        busy = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=_key(team, "busy"))
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "idempotency_key_in_progress"
    done = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=_key(team, "busy"))
    assert done.status_code == 201


def test_purge_drops_only_expired_keys(client: TestClient, session: Session) -> None:
    from ftq.shared.idempotency.service import purge_expired

    team = create_team(client)
    for key in ("stale", "fresh"):
        client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=_key(team, key))
    stale = session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "stale"))
    assert stale is not None
    stale.expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    assert purge_expired(session) == 1
    assert session.scalars(select(IdempotencyKey.key)).all() == ["fresh"]


def test_eval_create_replays(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = upload(client, team, chat_jsonl(12), purpose="eval").json()["id"]
    datasets.run_validation(session, dataset)
    body = {"dataset": dataset, "models": [MODEL], "grader": "exact"}
    first = client.post("/v1/evals", json=body, headers=_key(team, "ev-1"))
    again = client.post("/v1/evals", json=body, headers=_key(team, "ev-1"))
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(client.get("/v1/evals", headers=auth(team)).json()["data"]) == 1


def test_dataset_split_and_convert_replay(client: TestClient, session: Session) -> None:
    team = create_team(client)
    source = upload(client, team, chat_jsonl(20)).json()["id"]
    body = {"fraction": 0.2, "seed": 1}
    first = client.post(f"/v1/datasets/{source}/split", json=body, headers=_key(team, "split"))
    again = client.post(f"/v1/datasets/{source}/split", json=body, headers=_key(team, "split"))
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert session.scalar(select(func.count()).select_from(Dataset)) == 3
    records = b"".join(
        b'{"input": [{"role": "user", "content": "Q%d?"}], "ideal": "A"}\n' % i for i in range(12)
    )
    evals = upload(client, team, records, purpose="eval").json()["id"]
    url = f"/v1/datasets/{evals}/convert"
    made = client.post(url, json={"to": "chat"}, headers=_key(team, "convert"))
    replayed = client.post(url, json={"to": "chat"}, headers=_key(team, "convert"))
    assert made.status_code == replayed.status_code == 201, made.text
    assert replayed.json() == made.json()
    assert replayed.headers["idempotent-replayed"] == "true"


def test_admin_team_and_key_creation_replay_in_the_admins_scope(client: TestClient) -> None:
    admin = {"authorization": "Bearer dev-admin-token", "Idempotency-Key": "onboard-1"}
    first = client.post("/v1/admin/teams", json={"name": "team-x"}, headers=admin)
    again = client.post("/v1/admin/teams", json={"name": "team-x"}, headers=admin)
    assert first.status_code == again.status_code == 201, first.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/admin/teams", json={"name": "team-y"}, headers=admin)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    team_id = first.json()["id"]
    # A team's own use of the same key text is a different scope.
    hook = client.post(
        "/v1/webhook-endpoints", json={"url": HOOK}, headers=_key(first.json(), "onboard-1")
    )
    assert hook.status_code == 201, hook.text
    key_headers = {**admin, "Idempotency-Key": "key-1"}
    issued = client.post(f"/v1/admin/teams/{team_id}/keys", headers=key_headers)
    reissued = client.post(f"/v1/admin/teams/{team_id}/keys", headers=key_headers)
    assert issued.status_code == reissued.status_code == 201, issued.text
    assert reissued.json()["key"] == issued.json()["key"]
    assert reissued.headers["idempotent-replayed"] == "true"
