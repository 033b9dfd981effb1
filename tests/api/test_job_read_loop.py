"""`GET /v1/jobs/{id}` on Postgres reads on the event loop, and says what the sync path says."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete

from ftq.services.api import loop_reads
from ftq.services.api.main import create_app
from ftq.services.api.routers import jobs as jobs_router
from ftq.services.api.routers import openai_jobs as openai_router
from ftq.shared.compat import jobs as compat_jobs
from ftq.shared.db import get_sessionmaker
from ftq.shared.jobs import service
from ftq.shared.models import Team
from tests.factories import auth, committed_team, create_team
from tests.services import postgres_url_or_skip, require_services

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def served(engine: Engine) -> Iterator[tuple[TestClient, dict[str, Any], str]]:
    """The real app on committed rows: a client, a team and its ready dataset (removed after)."""
    if engine.dialect.name != "postgresql":  # the event-loop read is Postgres only
        postgres_url_or_skip()
        if require_services():
            pytest.fail("FTQ_REQUIRE_SERVICES=1 but the tests run on SQLite")
        pytest.skip("the tests run on SQLite here")
    with TestClient(create_app()) as client, committed_team(client, "loop") as (team, dataset):
        yield client, team, dataset


def _job(client: TestClient, team: dict[str, Any], dataset: str, cancel: bool) -> str:
    created = client.post(
        "/v1/jobs", json={"model": MODEL, "training_dataset": dataset}, headers=auth(team)
    )
    assert created.status_code == 201, created.text
    job_id = str(created.json()["id"])
    if cancel:
        assert client.post(f"/v1/jobs/{job_id}/cancel", headers=auth(team)).status_code == 200
    return job_id


def _refused(*_: Any) -> None:
    raise AssertionError("read on a pool thread, not on the event loop")


def _no_thread_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_router, "_job_view", _refused)


def _team(db: Any, team: dict[str, Any]) -> Team:
    found = db.get(Team, team["id"])
    assert found is not None
    return found


def _sync_view(team_id: str, job_id: str) -> Any:
    with get_sessionmaker()() as db:
        team = db.get(Team, team_id)
        assert team is not None
        return service.view(db, team, job_id).model_dump(mode="json")


def test_a_finished_job_is_read_on_the_loop_with_the_sync_paths_view(
    served: tuple[TestClient, dict[str, Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, team, dataset = served
    job_id = _job(client, team, dataset, cancel=True)
    _no_thread_hop(monkeypatch)
    answer = client.get(f"/v1/jobs/{job_id}", headers=auth(team))
    assert answer.status_code == 200, answer.text
    assert answer.json() == _sync_view(team["id"], job_id)
    assert answer.json()["status"] == "cancelled" and answer.json()["queue_position"] is None


def test_a_queued_job_takes_the_sync_path_for_its_queue_place(
    served: tuple[TestClient, dict[str, Any], str],
) -> None:
    client, team, dataset = served
    job_id = _job(client, team, dataset, cancel=False)
    answer = client.get(f"/v1/jobs/{job_id}", headers=auth(team))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "queued" and answer.json()["queue_position"] >= 1


def test_another_teams_job_is_a_404_from_the_loop(
    served: tuple[TestClient, dict[str, Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, team, dataset = served
    job_id = _job(client, team, dataset, cancel=True)
    other = create_team(client, f"loop-other-{uuid.uuid4().hex[:8]}")
    try:
        _no_thread_hop(monkeypatch)
        answer = client.get(f"/v1/jobs/{job_id}", headers=auth(other))
        assert answer.status_code == 404 and answer.json()["error"]["param"] == "id"
        missing = client.get("/v1/jobs/ftj_nope", headers=auth(team))
        assert missing.status_code == 404
    finally:
        with get_sessionmaker()() as db:
            db.execute(delete(Team).where(Team.id == other["id"]))
            db.commit()


def test_a_connection_postgres_dropped_is_replaced_without_an_error(
    served: tuple[TestClient, dict[str, Any], str], engine: Engine
) -> None:
    client, team, dataset = served
    job_id = _job(client, team, dataset, cancel=True)
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(team)).status_code == 200
    pools = list(loop_reads._pools.values())
    assert pools and pools[0]._idle, "the read left its connection in the pool"
    pids = [connection.info.backend_pid for connection in pools[0]._idle]
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    answer = client.get(f"/v1/jobs/{job_id}", headers=auth(team))
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == job_id


def test_the_sdks_retrieve_is_read_on_the_loop_with_openais_object_and_404(
    served: tuple[TestClient, dict[str, Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, team, dataset = served
    job_id = _job(client, team, dataset, cancel=True)
    with get_sessionmaker()() as db:
        expected = compat_jobs.job_object(
            compat_jobs.get(db, _team(db, team), f"ftjob-{job_id[4:]}")
        )
    monkeypatch.setattr(openai_router, "_job_object", _refused)
    answer = client.get(f"/v1/fine_tuning/jobs/{expected['id']}", headers=auth(team))
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected and answer.json()["status"] == "cancelled"
    for missing in ("ftjob-nope", "not-an-id"):
        refused = client.get(f"/v1/fine_tuning/jobs/{missing}", headers=auth(team))
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "fine_tune_not_found"
