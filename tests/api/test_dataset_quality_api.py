"""The report's quality section over HTTP, and the leak warning on job creation."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ftq.shared.datasets import service as datasets
from tests.factories import auth, chat_jsonl, chat_line, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"


def _ready(client: TestClient, session: Session, team: dict[str, Any], content: bytes) -> Any:
    dataset = upload(client, team, content).json()
    datasets.run_validation(session, dataset["id"])
    return client.get(f"/v1/datasets/{dataset['id']}", headers=auth(team)).json()


def _events(client: TestClient, team: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    page = client.get(f"/v1/jobs/{job_id}/events", headers=auth(team)).json()
    return list(page["data"])


def test_report_has_a_quality_section_with_lines(client: TestClient, session: Session) -> None:
    team = create_team(client)
    rows = [json.dumps(chat_line(i)) for i in range(12)]
    rows.append(rows[3])  # line 13 repeats line 4
    conflict = chat_line(5)
    conflict["messages"][2]["content"] = "I do not know."
    rows.append(json.dumps(conflict))  # line 14 answers line 6's prompt differently
    dataset = _ready(client, session, team, ("\n".join(rows) + "\n").encode())
    assert dataset["status"] == "ready", "quality findings are warnings, never errors"
    quality = dataset["report"]["quality"]
    assert quality["n_examples"] == 14
    assert quality["exact_duplicates"]["lines"] == [13]
    assert quality["exact_duplicates"]["matches"] == [4]
    assert quality["conflicting_answers"]["lines"] == [14]
    assert quality["conflicting_answers"]["matches"] == [6]
    codes = {w["code"] for w in quality["warnings"]}
    assert {"quality_exact_duplicates", "quality_conflicting_answers"} <= codes
    assert quality["overlap"] is None
    # The report's other fields are unchanged by the quality pass.
    assert dataset["report"]["ok"] is True
    assert dataset["report"]["errors"]["total"] == 0


def test_a_leaked_validation_set_warns_on_job_creation(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    training = _ready(client, session, team, chat_jsonl(20))
    validation = _ready(client, session, team, chat_jsonl(12, offset=15))  # 15..19 are training's
    response = client.post(
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": training["id"],
            "validation_dataset": validation["id"],
        },
        headers=auth(team),
    )
    assert response.status_code == 201, response.text
    warnings = [e for e in _events(client, team, response.json()["id"]) if e["level"] == "warn"]
    leak = [e["message"] for e in warnings if "repeats training dataset" in e["message"]]
    assert len(leak) == 1, warnings
    assert f"Validation dataset {validation['id']}" in leak[0]
    assert "5 exactly at validation lines 1 (training line 16), 2 (training line 17)" in leak[0]


def test_distinct_datasets_add_no_leak_warning(client: TestClient, session: Session) -> None:
    team = create_team(client)
    training = _ready(client, session, team, chat_jsonl(20))
    validation = _ready(client, session, team, chat_jsonl(12, offset=100))
    response = client.post(
        "/v1/jobs",
        json={
            "model": MODEL,
            "training_dataset": training["id"],
            "validation_dataset": validation["id"],
        },
        headers=auth(team),
    )
    assert response.status_code == 201, response.text
    messages = [e["message"] for e in _events(client, team, response.json()["id"])]
    assert not any("repeats training dataset" in m for m in messages)
