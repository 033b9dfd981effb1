"""A task whose worker keeps dying is refused after N deliveries, and what it names fails clearly.

Each delivery runs in a forked child that dies inside the task (os._exit: no cleanup, no ack),
as a SIGKILLed or OOM-killed worker would; the rows are committed, then removed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from ftq.services.worker.base import refuse
from ftq.services.worker.celery_app import celery_app
from ftq.shared import db
from ftq.shared.attempts import repository as attempts_repo
from ftq.shared.attempts import service as attempts
from ftq.shared.attempts.service import CRASH_LOOP_CODE
from ftq.shared.datasets.validation.report import ValidationReport
from ftq.shared.ids import new_id
from ftq.shared.models import Eval, Job, OutboxMessage, TaskAttempt, Team, WebhookDelivery
from ftq.shared.observability.metrics import CRASH_LOOPS
from ftq.shared.settings import get_settings
from ftq.shared.timeutil import utcnow
from tests.factories import auth, chat_jsonl, create_team, job_row, team_row, upload

CRASHED = 17
_crash = {"on": False}


@celery_app.task(name="tests.crash_worker")
def crash_worker(job_id: str) -> str:
    """Kills its process when told to, like a poison message; else succeeds."""
    if _crash["on"]:
        os._exit(CRASHED)
    return "ran"


@pytest.fixture
def committed_job(engine: Engine) -> Iterator[str]:
    """A submitted job in committed rows (the forked workers use their own connections)."""
    make = db.get_sessionmaker()
    with make() as session:
        first_outbox = session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
        team, _ = team_row(session, f"crash-{uuid.uuid4().hex[:8]}")
        job_id, team_id = job_row(session, team).id, team.id
        session.commit()
    yield job_id
    with make() as session:
        session.execute(delete(Team).where(Team.id == team_id))
        session.execute(delete(OutboxMessage).where(OutboxMessage.id > first_outbox))
        session.execute(delete(TaskAttempt).where(TaskAttempt.task == "tests.crash_worker"))
        session.commit()


def _deliver_in_dying_worker(job_id: str, task_id: str) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            db.get_engine.cache_clear()  # never touch the parent's pooled connections
            db.get_sessionmaker.cache_clear()
            _crash["on"] = True
            crash_worker.apply(args=[job_id], task_id=task_id)
        finally:
            os._exit(3)  # only when the task did not crash
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _job(job_id: str) -> Any:
    with db.get_sessionmaker()() as session:
        return session.get(Job, job_id)


def test_poison_message_is_refused_after_the_cap_and_fails_its_job(committed_job: str) -> None:
    cap = get_settings().task_max_deliveries
    task_id = f"poison-{uuid.uuid4().hex}"
    refused_before = CRASH_LOOPS.labels("tests.crash_worker")._value.get()
    for _ in range(cap):
        assert _deliver_in_dying_worker(committed_job, task_id) == CRASHED
        assert _job(committed_job).status == "submitted"  # still retried: might be transient
    result = crash_worker.apply(args=[committed_job], task_id=task_id)
    assert result.result is None  # refused: the task body never ran again
    job = _job(committed_job)
    assert (job.status, job.error_code) == ("failed", CRASH_LOOP_CODE)
    assert f"died {cap} times" in job.error_message
    assert CRASH_LOOPS.labels("tests.crash_worker")._value.get() == refused_before + 1
    again = crash_worker.apply(args=[committed_job], task_id=task_id)
    assert again.result is None


def test_a_task_that_finishes_leaves_no_counter(committed_job: str) -> None:
    task_id = f"fine-{uuid.uuid4().hex}"
    assert _deliver_in_dying_worker(committed_job, task_id) == CRASHED
    assert crash_worker.apply(args=[committed_job], task_id=task_id).result == "ran"
    with db.get_sessionmaker()() as session:
        assert session.get(TaskAttempt, f"{task_id}:0") is None
    assert _job(committed_job).status == "submitted"


@celery_app.task(name="tests.who_am_i", bind=True)
def who_am_i(self: Any, job_id: str) -> tuple[str, int]:
    """What the body sees of its own request."""
    return self.request.id, self.request.retries


def test_bound_tasks_still_see_their_own_request(committed_job: str) -> None:
    result = who_am_i.apply(args=[committed_job], task_id="req-seen", retries=3)
    assert tuple(result.result) == ("req-seen", 3)  # retry back-off depends on it
    assert tuple(who_am_i(committed_job))[1] == 0  # a plain call still works


def test_a_refused_validation_makes_the_dataset_invalid_and_fails_its_jobs(
    client: TestClient, session: Session
) -> None:
    team = create_team(client)
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["dataset.invalid"]}
    assert client.post("/v1/webhook-endpoints", json=hook, headers=auth(team)).status_code == 201
    dataset = upload(client, team, chat_jsonl(12)).json()
    job = client.post(
        "/v1/jobs",
        json={"model": "gpt-4o-mini-2024-07-18", "training_dataset": dataset["id"]},
        headers=auth(team),
    ).json()
    assert job["status"] == "queued"
    refuse(session, "datasets.validate", (dataset["id"],), 4)
    read = client.get(f"/v1/datasets/{dataset['id']}", headers=auth(team)).json()
    assert read["status"] == "invalid"
    report = ValidationReport.model_validate(read["report"])
    assert report.errors.by_code == {CRASH_LOOP_CODE: 1}
    assert "died 3 times" in report.errors.items[0].message
    failed = client.get(f"/v1/jobs/{job['id']}", headers=auth(team)).json()
    assert (failed["status"], failed["error"]["code"]) == ("failed", "invalid_dataset")
    sent = select(WebhookDelivery.event_type).where(WebhookDelivery.team_id == team["id"])
    assert list(session.scalars(sent)) == ["dataset.invalid"]


def test_a_refused_eval_fails_even_while_its_dead_run_holds_the_lease(session: Session) -> None:
    team, _ = team_row(session, f"crash-{uuid.uuid4().hex[:8]}")
    job = job_row(session, team)
    row = Eval(
        id=new_id("ev"),
        team_id=team.id,
        status="running",
        dataset_id=job.training_dataset_id,
        grader="exact",
        models=["gpt-4o-mini-2024-07-18"],
        provider="emulator",
        lease_token="dead-run",
        lease_until=utcnow() + timedelta(minutes=5),
    )
    session.add(row)
    session.flush()
    refuse(session, "evals.run", (row.id,), 4)
    assert (row.status, row.error_code, row.lease_token) == ("failed", CRASH_LOOP_CODE, None)
    assert "for this eval died 3 times" in (row.error_message or "")


def test_counters_untouched_for_a_week_are_purged(session: Session) -> None:
    now = utcnow()
    attempts_repo.bump(session, "old:0", "tests.crash_worker", now - timedelta(days=8))
    attempts_repo.bump(session, "new:0", "tests.crash_worker", now - timedelta(days=1))
    assert attempts.purge_stale(session) >= 1
    assert session.get(TaskAttempt, "old:0") is None
    assert session.get(TaskAttempt, "new:0") is not None


def test_a_refused_webhook_delivery_fails_and_the_sweep_leaves_it(session: Session) -> None:
    from ftq.shared.webhooks import service as webhooks
    from ftq.shared.webhooks.schemas import WebhookEndpointCreate

    team, _ = team_row(session, f"crash-{uuid.uuid4().hex[:8]}")
    webhooks.create_endpoint(session, team, WebhookEndpointCreate(url="http://127.0.0.1:9/h"))
    event_id = webhooks.emit(session, team.id, "job.failed", {"id": "x"})
    delivery = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
    ).one()
    assert delivery.id.startswith("whd_")
    refuse(session, "webhooks.deliver", (delivery.id,), 4)
    assert delivery.status == "failed"
    assert CRASH_LOOP_CODE in (delivery.last_error or "")
    assert "for this webhook delivery died 3 times" in (delivery.last_error or "")
    assert delivery.id not in {c.id for c in webhooks.claim_batch(session)}
