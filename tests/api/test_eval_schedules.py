"""Eval schedules over HTTP: create, list, pause, resume, delete, runs, chart, regressions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ftq.services.cli.client import FtqAPIError, FtqClient
from ftq.services.cli.team import api
from ftq.services.cli.team import schedules as cli
from ftq.shared.datasets import service as datasets
from ftq.shared.evals import service as evals
from ftq.shared.evals.runner import Answer
from ftq.shared.models import Eval, EvalSchedule, WebhookDelivery
from ftq.shared.schedules import service
from ftq.shared.timeutil import as_utc, utcnow
from tests.factories import auth, chat_jsonl, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"
BASE = "/v1/eval-schedules"


def _dataset(client: TestClient, session: Session, team: dict[str, Any]) -> str:
    dataset = upload(client, team, chat_jsonl(10)).json()
    datasets.run_validation(session, dataset["id"])
    return str(dataset["id"])


def _create(client: TestClient, team: dict[str, Any], dataset: str, **fields: Any) -> Any:
    body = {"model": MODEL, "dataset": dataset, "grader": "exact", "cron": "0 6 * * *", **fields}
    return client.post(BASE, json=body, headers=auth(team))


def _param(response: Any) -> tuple[int, str | None]:
    return response.status_code, response.json()["error"]["param"]


def _make_due(session: Session, schedule_id: str) -> None:
    row = session.get(EvalSchedule, schedule_id)
    assert row is not None
    row.next_run_at = utcnow() - timedelta(minutes=1)
    session.flush()


def _complete(session: Session, eval_id: str, wrong: set[int]) -> None:
    """Finish an eval through the eval service: right answers except the `wrong` items."""
    token = uuid.uuid4().hex
    assert evals.claim(session, eval_id, token)
    plan = evals.plan(session, eval_id)
    assert plan is not None
    answers = [
        Answer(
            w.index, w.model, "nope" if w.index in wrong else plan.references[w.index][0], None, 1
        )
        for w in plan.work
    ]
    assert evals.record(session, eval_id, token, answers, plan.references, plan.grader)
    assert evals.finish(session, eval_id, token) is not None


def _regressions(session: Session) -> list[dict[str, Any]]:
    query = select(WebhookDelivery.payload).where(WebhookDelivery.event_type == "eval.regressed")
    return [json.loads(payload)["data"] for payload in session.scalars(query)]


def test_create_list_pause_resume_delete(client: TestClient, session: Session) -> None:
    team = create_team(client)
    dataset = _dataset(client, session, team)
    created = _create(client, team, dataset, name="nightly", tolerance=0.1)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["object"] == "eval_schedule" and body["id"].startswith("evs_")
    assert (body["status"], body["baseline"], body["last_run"]) == ("active", None, None)
    assert (body["cron"], body["timezone"], body["tolerance"]) == ("0 6 * * *", "UTC", 0.1)
    next_run = datetime.fromisoformat(body["next_run_at"])
    assert utcnow() < next_run <= utcnow() + timedelta(days=1)
    assert (next_run.hour, next_run.minute) == (6, 0)

    second = _create(client, team, dataset, cron="@hourly", baseline=0.8).json()
    page = client.get(f"{BASE}?limit=1", headers=auth(team)).json()
    assert [s["id"] for s in page["data"]] == [second["id"]] and page["has_more"] is True
    rest = client.get(f"{BASE}?limit=1&after={second['id']}", headers=auth(team)).json()
    assert [s["id"] for s in rest["data"]] == [body["id"]] and rest["has_more"] is False

    for _ in range(2):  # pausing twice is harmless
        paused = client.post(f"{BASE}/{body['id']}/pause", headers=auth(team))
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
    _make_due(session, body["id"])
    assert service.claim_due(session) == [], "a paused schedule starts nothing"
    resumed = client.post(f"{BASE}/{body['id']}/resume", headers=auth(team)).json()
    assert resumed["status"] == "active"
    assert datetime.fromisoformat(resumed["next_run_at"]) > utcnow(), "missed slots skipped"

    assert client.delete(f"{BASE}/{body['id']}", headers=auth(team)).status_code == 204
    assert client.get(f"{BASE}/{body['id']}", headers=auth(team)).status_code == 404
    listed = client.get(BASE, headers=auth(team)).json()["data"]
    assert [s["id"] for s in listed] == [second["id"]]


def test_bad_input_names_the_field(client: TestClient, session: Session) -> None:
    team, other = create_team(client), create_team(client, "team-b")
    dataset = _dataset(client, session, team)
    for cron in ("61 * * * *", "* * * *", "every day", "0 0 30 2 *"):
        response = _create(client, team, dataset, cron=cron)
        assert _param(response) == (422, "cron"), (cron, response.text)
        assert "cron" in response.json()["error"]["message"]
    assert _param(_create(client, team, dataset, timezone="Mars/Olympus")) == (422, "timezone")
    assert _param(_create(client, other, dataset)) == (404, "dataset")
    assert _param(_create(client, team, "ds_nope")) == (404, "dataset")
    assert _param(_create(client, team, dataset, grader="vibes")) == (422, "grader")
    assert _param(_create(client, team, dataset, baseline=1.5)) == (422, "baseline")
    assert _param(_create(client, team, dataset, provider="nope")) == (422, "provider")
    judge = {"model": MODEL, "rubric": "be fair"}
    assert _param(_create(client, team, dataset, judge=judge)) == (422, "judge")
    assert _param(_create(client, team, dataset, model="ft:gpt-4o-mini:x::nope")) == (404, "model")
    assert client.get(BASE, headers=auth(team)).json()["data"] == []


def test_another_teams_schedule_is_not_found(client: TestClient, session: Session) -> None:
    team, other = create_team(client), create_team(client, "team-b")
    schedule = _create(client, team, _dataset(client, session, team)).json()
    for method, path in (
        ("GET", ""),
        ("GET", "/runs"),
        ("GET", "/chart.svg"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("DELETE", ""),
    ):
        response = client.request(method, f"{BASE}/{schedule['id']}{path}", headers=auth(other))
        assert response.status_code == 404, (method, path, response.text)
    assert client.get(BASE, headers=auth(other)).json()["data"] == []
    again = client.get(f"{BASE}/{schedule['id']}", headers=auth(team)).json()
    assert again["status"] == "active"


def test_runs_settle_against_the_first_score_and_a_regression_is_emitted_once(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["eval.regressed"]}
    assert client.post("/v1/webhook-endpoints", json=hook, headers=auth(team)).status_code == 201
    dataset = _dataset(client, session, team)
    schedule = _create(client, team, dataset, tolerance=0.1).json()

    _make_due(session, schedule["id"])
    [first] = service.claim_due(session)
    assert service.claim_due(session) == [], "the slot is claimed once"
    evaluation = client.get(f"/v1/evals/{first.eval_id}", headers=auth(team)).json()
    assert evaluation["models"] == [MODEL] and evaluation["dataset"] == dataset
    assert evaluation["name"].startswith(f"schedule {schedule['id']} at ")
    assert service.settle_finished(session) == [], "nothing settles before the eval finishes"
    _complete(session, first.eval_id or "", wrong=set())
    service.settle_finished(session)
    read = client.get(f"{BASE}/{schedule['id']}", headers=auth(team)).json()
    assert (read["baseline"], read["baseline_eval"]) == (1.0, first.eval_id)
    assert read["last_run"]["score"] == 1.0 and read["last_run"]["regressed"] is False

    _make_due(session, schedule["id"])
    [second] = service.claim_due(session)
    _complete(session, second.eval_id or "", wrong={2, 5, 7})
    for _ in range(3):  # repeated ticks settle and alert once
        service.settle_finished(session)
    [alert] = _regressions(session)
    assert (alert["schedule"], alert["eval_id"], alert["run"]) == (
        schedule["id"],
        second.eval_id,
        second.id,
    )
    assert (alert["score"], alert["baseline"], alert["tolerance"]) == (0.7, 1.0, 0.1)
    changed = alert["changed_items"]
    assert changed["against_eval"] == first.eval_id
    assert changed["regressed_items"] == [2, 5, 7] and changed["improved_items"] == []

    runs = client.get(f"{BASE}/{schedule['id']}/runs", headers=auth(team)).json()["data"]
    assert [r["eval_id"] for r in runs] == [second.eval_id, first.eval_id]
    assert [(r["status"], r["score"], r["regressed"]) for r in runs] == [
        ("completed", 0.7, True),
        ("completed", 1.0, False),
    ]
    assert all(r["baseline"] == 1.0 for r in runs)
    chart = client.get(f"{BASE}/{schedule['id']}/chart.svg", headers=auth(team))
    assert chart.headers["content-type"].startswith("image/svg+xml")
    assert chart.text.count("<circle") == 2 and chart.text.count('class="run regressed"') == 1
    assert 'class="baseline"' in chart.text and 'class="tolerance"' in chart.text


def test_a_given_baseline_reports_the_failed_items(client: TestClient, session: Session) -> None:
    team = create_team(client)
    hook = {"url": "http://127.0.0.1:9/hook"}
    assert client.post("/v1/webhook-endpoints", json=hook, headers=auth(team)).status_code == 201
    schedule = _create(client, team, _dataset(client, session, team), baseline=0.95).json()
    _make_due(session, schedule["id"])
    [run] = service.claim_due(session)
    _complete(session, run.eval_id or "", wrong={0, 3})
    service.settle_finished(session)
    [alert] = _regressions(session)
    assert (alert["score"], alert["baseline"]) == (0.8, 0.95)
    assert alert["changed_items"] == {"against_eval": None, "failed": 2, "failed_items": [0, 3]}
    read = client.get(f"{BASE}/{schedule['id']}", headers=auth(team)).json()
    assert read["baseline"] == 0.95 and read["baseline_eval"] is None, "a given baseline stays"


def test_a_slot_whose_eval_cannot_start_is_a_failed_run(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    dataset = _dataset(client, session, team)
    schedule = _create(client, team, dataset).json()
    assert client.delete(f"/v1/datasets/{dataset}", headers=auth(team)).status_code == 204
    _make_due(session, schedule["id"])
    [run] = service.claim_due(session)
    assert run.status == "failed" and run.eval_id is None
    assert run.error is not None and dataset in run.error
    assert session.scalars(select(Eval).where(Eval.team_id == team["id"])).all() == []
    read = client.get(f"{BASE}/{schedule['id']}", headers=auth(team)).json()
    assert read["status"] == "active" and read["last_run"]["status"] == "failed"
    due = as_utc(session.get(EvalSchedule, schedule["id"]).next_run_at)  # type: ignore[union-attr]
    assert due is not None and due > utcnow(), "the schedule moved on to its next slot"


def test_regression_rule() -> None:
    assert service.is_regression(0.74, None, 0.8, 0.05)
    assert not service.is_regression(0.75, None, 0.8, 0.05), "at the edge of the band is fine"
    assert service.is_regression(0.78, [0.77, 0.79], 0.8, 0.05), "the interval lies below"
    assert not service.is_regression(0.78, [0.7, 0.86], 0.8, 0.05)


def test_cli_creates_and_lists_schedules_with_last_score_and_baseline(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = create_team(client)
    dataset = _dataset(client, session, team)

    @contextmanager
    def connect() -> Iterator[FtqClient]:
        """The CLI's connection, over the test client (its error handling kept)."""
        ftq = FtqClient("http://testserver", team["api_key"]["key"])
        ftq.http = client
        client.headers.update(auth(team))
        try:
            yield ftq
        except FtqAPIError as exc:
            raise api.fail(str(exc), api.API_ERROR) from exc

    monkeypatch.setattr(cli, "connect", connect)
    runner = CliRunner()
    args = ["create", "--model", MODEL, "--dataset", dataset, "--cron", "*/30 * * * *"]
    created = runner.invoke(cli.schedules_app, [*args, "--name", "drift", "--json"])
    assert created.exit_code == 0, created.output
    schedule_id = json.loads(created.output)["id"]
    _make_due(session, schedule_id)
    [run] = service.claim_due(session)
    _complete(session, run.eval_id or "", wrong={1})
    service.settle_finished(session)
    bad = runner.invoke(cli.schedules_app, [*args[:-1], "every day"])
    assert bad.exit_code == 3 and "cron" in bad.output
    listed = runner.invoke(cli.schedules_app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.output.splitlines() if schedule_id in line]
    assert "drift" in row and "completed" not in row
    assert "0.900" in row, "the last score"
    assert "0.900 (-0.05)" in row, "the baseline is the first run's score"
    assert "active" in row
