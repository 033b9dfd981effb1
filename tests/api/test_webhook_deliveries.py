"""The delivery log and replay over HTTP, and dataset events emitted once per state change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from ftq.services.cli.receiver import WebhookReceiver
from ftq.shared.datasets import service as datasets
from ftq.shared.models import Team, WebhookDelivery
from ftq.shared.webhooks import service
from ftq.shared.webhooks.dispatcher import Dispatcher
from tests.conftest import SentTasks
from tests.factories import auth, chat_jsonl, create_team, job_row, upload


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


@pytest.fixture(scope="module")
def dispatcher() -> Iterator[Dispatcher]:
    sending = Dispatcher(timeout=2, allow_hosts=["127.0.0.1"], require_https=False)
    yield sending
    sending.close()


def _endpoint(client: TestClient, team: dict[str, Any], url: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/webhook-endpoints", json={"url": url, **body}, headers=auth(team))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _deliveries(client: TestClient, team: dict[str, Any], **filters: str) -> list[dict[str, Any]]:
    response = client.get("/v1/webhook-deliveries", params=filters, headers=auth(team))
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _deliver_all(session: Session, dispatcher: Dispatcher) -> None:
    claimed = service.claim_batch(session)
    service.record_batch(session, claimed, service.send_batch(claimed, dispatcher))


def test_deliveries_filter_by_job_endpoint_and_status_with_their_attempts(
    client: TestClient, session: Session, receiver: WebhookReceiver, dispatcher: Dispatcher
) -> None:
    team = create_team(client)
    good = _endpoint(client, team, receiver.url)
    broken = _endpoint(client, team, "http://127.0.0.1:9/down")
    row = session.get(Team, team["id"])
    job = job_row(session, row)
    service.emit(session, team["id"], "job.running", {"id": job.id}, job=job)
    service.emit(session, team["id"], "dataset.ready", {"id": "ds_1"})
    _deliver_all(session, dispatcher)
    assert len(_deliveries(client, team)) == 4
    by_job = _deliveries(client, team, job=job.id)
    assert {d["endpoint_id"] for d in by_job} == {good["id"], broken["id"]}
    failing = _deliveries(client, team, endpoint=broken["id"])
    assert [d["status"] for d in failing] == ["pending", "pending"]
    assert failing[0]["attempt_log"][0]["error"] == "connection refused"
    done = _deliveries(client, team, status="succeeded")
    assert {d["endpoint_id"] for d in done} == {good["id"]}
    (log,) = {tuple((a["attempt"], a["status_code"]) for a in d["attempt_log"]) for d in done}
    assert log == ((1, 200),)
    bad = client.get("/v1/webhook-deliveries?status=lost", headers=auth(team))
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "status"


def test_redeliver_replays_with_the_same_webhook_id(
    client: TestClient,
    session: Session,
    receiver: WebhookReceiver,
    dispatcher: Dispatcher,
    sent_tasks: SentTasks,
) -> None:
    team = create_team(client)
    endpoint = _endpoint(client, team, receiver.url)
    service.emit(session, team["id"], "job.succeeded", {"id": "ftj_1"})
    _deliver_all(session, dispatcher)
    (delivery,) = _deliveries(client, team, status="succeeded")
    replay = client.post(f"/v1/webhook-deliveries/{delivery['id']}/redeliver", headers=auth(team))
    assert replay.status_code == 200, replay.text
    assert replay.json()["status"] == "pending"
    assert ("webhooks.deliver", [delivery["id"]]) in sent_tasks
    _deliver_all(session, dispatcher)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["event_id"]
    assert first.body == second.body
    assert Webhook(endpoint["secret"]).verify(second.body, second.headers)["data"]["id"] == "ftj_1"
    again = client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=auth(team)).json()
    assert (again["status"], again["attempts"], len(again["attempt_log"])) == ("succeeded", 2, 2)


def test_redeliver_to_a_disabled_endpoint_is_409_and_other_teams_get_404(
    client: TestClient, session: Session
) -> None:
    team, other = create_team(client, "owner"), create_team(client, "other")
    endpoint = _endpoint(client, team, "http://127.0.0.1:9/hook")
    service.emit(session, team["id"], "job.failed", {"id": "ftj_1"})
    (delivery,) = _deliveries(client, team)
    path = f"/v1/webhook-deliveries/{delivery['id']}"
    assert client.get(path, headers=auth(other)).status_code == 404
    assert client.post(f"{path}/redeliver", headers=auth(other)).status_code == 404
    client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"disabled": True}, headers=auth(team)
    )
    response = client.post(f"{path}/redeliver", headers=auth(team))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "endpoint_disabled"


@pytest.mark.parametrize(
    ("content", "event_type"),
    [(chat_jsonl(12), "dataset.ready"), (b'{"messages": []}\n' * 12, "dataset.invalid")],
)
def test_a_validated_dataset_emits_exactly_one_event(
    client: TestClient, session: Session, content: bytes, event_type: str
) -> None:
    team = create_team(client)
    _endpoint(client, team, "http://127.0.0.1:9/hook", events=[event_type])
    dataset = upload(client, team, content).json()
    datasets.run_validation(session, dataset["id"])
    datasets.run_validation(session, dataset["id"])  # the task redelivered by the broker
    rows = session.scalars(select(WebhookDelivery)).all()
    assert [(r.event_type, r.status) for r in rows] == [(event_type, "pending")]
    assert f'"id":"{dataset["id"]}"' in rows[0].payload
