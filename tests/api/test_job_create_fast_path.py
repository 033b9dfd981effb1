"""Creating a job on a cached key: the team's limits are read under the lock, one batch of
inserts, and the request relays only its own outbox rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from ftq.services.api import deps
from ftq.services.api.main import create_app
from ftq.services.worker.tasks import outbox as outbox_tasks
from ftq.shared.datasets import service as datasets
from ftq.shared.db import get_engine, get_sessionmaker
from ftq.shared.models import Job, OutboxMessage, Team
from ftq.shared.outbox import relay
from tests.factories import ADMIN, auth, chat_jsonl, committed_team, create_team, upload

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    deps.key_cache.clear()
    yield
    deps.key_cache.clear()


def _ready_dataset(client: TestClient, session: Session, team: dict[str, Any]) -> str:
    dataset = upload(client, team, chat_jsonl(12)).json()
    datasets.run_validation(session, dataset["id"])
    return str(dataset["id"])


def _create(client: TestClient, team: dict[str, Any], dataset: str) -> Any:
    body = {"model": MODEL, "training_dataset": dataset}
    return client.post("/v1/jobs", json=body, headers=auth(team))


def test_a_limit_lowered_elsewhere_holds_for_a_cached_key(
    client: TestClient, session: Session
) -> None:
    team = create_team(client, "limit-elsewhere", max_active_jobs=3)
    dataset = _ready_dataset(client, session, team)
    assert _create(client, team, dataset).status_code == 201  # the key is cached now
    # Another server process lowers the limit: this one's cached team still says 3.
    session.connection().execute(
        update(Team.__table__).where(Team.__table__.c.id == team["id"]).values(max_active_jobs=1)
    )
    refused = _create(client, team, dataset)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "max_active_jobs"
    assert "1 unfinished jobs" in refused.json()["error"]["message"]


def test_a_key_revoked_here_creates_nothing_more(client: TestClient, session: Session) -> None:
    team = create_team(client, "revoked-create")
    dataset = _ready_dataset(client, session, team)
    assert _create(client, team, dataset).status_code == 201
    key = team["api_key"]
    revoked = client.delete(f"/v1/admin/teams/{team['id']}/keys/{key['id']}", headers=ADMIN)
    assert revoked.status_code == 204
    assert _create(client, team, dataset).status_code == 401


def test_a_warm_create_asks_the_database_eight_things(client: TestClient, session: Session) -> None:
    team = create_team(client, "warm-create")
    dataset = _ready_dataset(client, session, team)
    assert _create(client, team, dataset).status_code == 201
    statements: list[str] = []
    connection = session.connection()

    def seen(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(connection, "before_cursor_execute", seen)
    try:
        created = _create(client, team, dataset)
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    assert created.status_code == 201, created.text
    assert created.json()["queue_position"] == 2
    # Without the relay (the fixture's claims through the test's session; the server's claims
    # only the request's own rows, tested in tests/unit/test_outbox.py).
    relay = ("SELECT outbox.", "UPDATE outbox")
    work = [s for s in statements if "SAVEPOINT" not in s and not s.startswith(relay)]
    inserts = [s for s in work if s.startswith("INSERT")]
    assert sorted(s.split()[2] for s in inserts) == ["job_events", "jobs", "outbox"], work
    assert not any("api_keys" in s for s in work), "the key was not looked up again"
    assert any(s.startswith("SELECT teams.") and "FOR NO KEY UPDATE" in s for s in work)
    assert not any(s.startswith("UPDATE jobs") for s in work), "ready_at rides the insert"
    # credential, dataset, team lock, active count, 3 inserts, the queue: eight.
    assert len(work) == 8, "\n".join(s[:90] for s in work)


def test_a_create_sends_its_task_after_commit_and_marks_it_without_waiting(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real request boundary (no test session): the task leaves at once, leased to the
    request, so a worker relaying meanwhile does not send it too; the mark lands in a batch."""
    sent: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(outbox_tasks, "send", lambda task, args: sent.append((task, list(args))))
    make = get_sessionmaker()
    with TestClient(create_app()) as client, committed_team(client, "lease") as (team, dataset):
        outbox_tasks.marks.flush()
        sent.clear()
        created = _create(client, team, dataset)
        assert created.status_code == 201, created.text
        assert sent == [("jobs.schedule", ["emulator", MODEL])]
        with make() as db:
            row = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
            assert row is not None and row.leased_until is not None
            assert relay(db, lambda t, a: sent.append((t, list(a)))) == 0, "leased: no twin"
            db.commit()
        outbox_tasks.marks.flush()  # what the marks thread does within milliseconds
        with make() as db:
            marked = db.get(OutboxMessage, row.id)
            assert marked is not None and marked.dispatched_at is not None
            assert marked.relay_attempts == 1 and marked.leased_until is None


def test_a_request_failing_mid_transaction_rolls_back_and_returns_its_connection(
    engine: Engine,
) -> None:
    """The real session dependency: a refused create leaves no row and no connection held."""
    pool = get_engine().pool
    with (
        TestClient(create_app()) as client,
        committed_team(client, "refused", max_active_jobs=1) as (team, dataset),
    ):
        assert _create(client, team, dataset).status_code == 201
        outbox_tasks.marks.flush()  # the marks thread holds no connection while we count
        held = pool.checkedout()  # type: ignore[attr-defined]
        refused = _create(client, team, dataset)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "max_active_jobs"
        assert pool.checkedout() == held  # type: ignore[attr-defined]
        with get_sessionmaker()() as db:
            count = select(func.count()).select_from(Job).where(Job.team_id == team["id"])
            assert db.scalar(count) == 1
