"""GET /metrics: the series a dashboard needs appear, and move when the service works."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from ftq.shared.settings import get_settings
from tests.factories import auth, chat_jsonl, create_team, upload
from tests.services import redis_url_or_skip

MODEL = "gpt-4o-mini-2024-07-18"


def _scrape(client: TestClient, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _value(text: str, series: str) -> float:
    """The sample of one series (name and exact labels), 0 when absent."""
    match = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _latency_count(route: str, status: int, method: str = "GET") -> str:
    labels = f'method="{method}",route="{route}",status="{status}"'
    return f"ftq_http_request_duration_seconds_count{{{labels}}}"


def _job(client: TestClient, session: Session, team: dict[str, Any]) -> dict[str, Any]:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    body = {"model": MODEL, "training_dataset": dataset["id"]}
    response = client.post("/v1/jobs", json=body, headers=auth(team))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_latency_by_route_template_and_jobs_by_status_move(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    before = _scrape(client)
    job = _job(client, session, team)
    for _ in range(3):
        assert client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).status_code == 200
    assert client.get("/v1/jobs/ftj_missing", headers=auth(team)).status_code == 404
    after = _scrape(client)
    route = _latency_count("/v1/jobs/{job_id}", 200)
    assert _value(after, route) - _value(before, route) == 3
    assert _value(after, _latency_count("/v1/jobs/{job_id}", 404)) >= 1
    assert _value(after, _latency_count("/v1/jobs", 201, "POST")) >= 1
    assert job["id"] not in after  # raw paths never become labels
    assert (
        _value(after, 'ftq_jobs{status="queued"}')
        == _value(before, 'ftq_jobs{status="queued"}') + 1
    )
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(team))
    cancelled = _scrape(client)
    assert (
        _value(cancelled, 'ftq_jobs{status="cancelled"}')
        == _value(after, 'ftq_jobs{status="cancelled"}') + 1
    )
    assert _value(cancelled, 'ftq_jobs{status="queued"}') == _value(
        before, 'ftq_jobs{status="queued"}'
    )


def test_validation_throughput_moves(client: TestClient, session: Session) -> None:
    team = create_team(client)
    before = _scrape(client)
    content = chat_jsonl(30)
    datasets.run_validation(session, upload(client, team, content).json()["id"])
    after = _scrape(client)
    grew = _value(after, "ftq_validation_bytes_total") - _value(
        before, "ftq_validation_bytes_total"
    )
    assert grew == len(content)
    ready = 'ftq_validation_datasets_total{status="ready"}'
    assert _value(after, ready) == _value(before, ready) + 1
    assert _value(after, "ftq_validation_seconds_total") > _value(
        before, "ftq_validation_seconds_total"
    )


def test_queue_depth_is_zero_on_the_embedded_broker(client: TestClient) -> None:
    text = _scrape(client)
    for queue in ("validate", "provider", "webhooks", "evals"):
        assert _value(text, f'ftq_queue_depth{{queue="{queue}"}}') == 0
        assert f'ftq_queue_depth{{queue="{queue}"}} 0.0' in text
    assert _value(text, "ftq_broker_up") == 1


def test_queue_depth_reads_redis_list_lengths(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_url_or_skip()
    broker = redis.Redis.from_url(url)
    keys = ["validate", "webhooks", "webhooks\x06\x169"]
    try:
        broker.delete(*keys)
        broker.rpush("validate", "a", "b", "c")
        broker.rpush("webhooks", "a")
        broker.rpush("webhooks\x06\x169", "b")  # kombu's list for priority 9
        monkeypatch.setattr(get_settings(), "broker_url", url)
        text = _scrape(client)
    finally:
        broker.delete(*keys)
    assert _value(text, 'ftq_queue_depth{queue="validate"}') == 3
    assert _value(text, 'ftq_queue_depth{queue="webhooks"}') == 2
    assert _value(text, "ftq_broker_up") == 1


def test_dead_broker_reports_down_instead_of_failing_the_scrape(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftq.shared.serving import free_port

    monkeypatch.setattr(get_settings(), "broker_url", f"redis://127.0.0.1:{free_port()}/0")
    text = _scrape(client)
    assert _value(text, "ftq_broker_up") == 0
    assert 'ftq_jobs{status="queued"}' in text


def test_metrics_token_guards_the_endpoint_when_set(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "metrics_token", SecretStr("scrape-token-123456"))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert "ftq_jobs" in _scrape(client, authorization="Bearer scrape-token-123456")
