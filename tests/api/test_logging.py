"""JSON logs through the real API and worker paths: ids bound, secrets never written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ftq.services.worker.celery_app import celery_app
from ftq.shared.observability.logging import configure_logging
from ftq.shared.observability.redaction import SecretRedactionFilter
from tests.factories import ADMIN, auth, create_team

HOOK = "http://127.0.0.1:9/hook"
OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwx"
log = logging.getLogger("ftq.test.paths")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every process log line, as configured for production, into a buffer."""
    buffer = io.StringIO()
    configure_logging("api", level="INFO", stream=buffer)
    yield buffer
    configure_logging("api", level="INFO")


def _records(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"ts", "level", "logger", "message"} <= record.keys()
    return records


@celery_app.task(name="tests.log_provider_reply")
def log_provider_reply(job_id: str, reply: str) -> None:
    """A worker task that logs what a provider answered (which may quote a key)."""
    log.warning("provider answered %s", reply)


def test_api_logs_carry_request_and_team_ids_and_no_secrets(
    client: TestClient, json_logs: io.StringIO
) -> None:
    team = create_team(client)
    key = team["api_key"]["key"]

    def leaky() -> None:
        log.info("retrying with Authorization: Bearer %s and %s", key, OPENAI_KEY)
        raise RuntimeError(f"provider rejected {OPENAI_KEY} for admin {ADMIN['authorization']}")

    client.app.add_api_route("/v1/test-leak", leaky, methods=["POST"])  # type: ignore[attr-defined]
    endpoint = client.post("/v1/webhook-endpoints", json={"url": HOOK}, headers=auth(team)).json()
    log.info("stored endpoint secret %s", endpoint["secret"])
    traced = client.get("/v1/jobs", headers={**auth(team), "X-Request-ID": "trace-42"})
    assert traced.headers["x-request-id"] == "trace-42"
    forged = client.get("/v1/jobs", headers={**auth(team), "X-Request-ID": "bad id <script>"})
    assert forged.headers["x-request-id"].startswith("req_")
    failed = client.post("/v1/test-leak", headers={**auth(team), "X-Request-ID": "leak-1"})
    assert failed.status_code == 500 and failed.headers["x-request-id"] == "leak-1"
    assert failed.json()["error"]["code"] == "internal_error"

    text = json_logs.getvalue()
    for secret in (key, OPENAI_KEY, endpoint["secret"], "dev-admin-token"):
        assert secret not in text
    assert "[REDACTED]" in text
    records = _records(json_logs)
    access = [r for r in records if r["logger"] == "ftq.access"]
    line = next(r for r in access if r["request_id"] == "trace-42")
    assert (line["route"], line["status"], line["team_id"]) == ("/v1/jobs", 200, team["id"])
    crash = next(r for r in records if r.get("request_id") == "leak-1" and r["level"] == "error")
    inside = next(r for r in records if r["message"].startswith("retrying with"))
    assert inside["request_id"] == "leak-1"
    assert "RuntimeError" in crash["exc"]


def test_worker_logs_carry_the_job_id_and_no_secrets(json_logs: io.StringIO) -> None:
    log_provider_reply.apply(args=["ftj_logtest1", f"401 for key {OPENAI_KEY}"])
    records = _records(json_logs)
    line = next(r for r in records if r["logger"] == "ftq.test.paths")
    assert line["job_id"] == "ftj_logtest1"
    assert line["task"] == "tests.log_provider_reply"
    assert OPENAI_KEY not in json_logs.getvalue()
    log.info("outside any task")
    assert "job_id" not in _records(json_logs)[-1]


def test_every_root_handler_redacts(json_logs: io.StringIO) -> None:
    handlers = logging.getLogger().handlers
    assert handlers
    for handler in handlers:
        assert any(isinstance(f, SecretRedactionFilter) for f in handler.filters)
