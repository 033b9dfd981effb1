"""Mirroring provider state: status mapping, deduplicated events, polling back-off, webhooks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.jobs import service
from shared.models import JobEvent, OutboxMessage, WebhookDelivery
from shared.providers.base import ProviderEvent, ProviderJob
from shared.settings import get_settings
from tests.factories import job_row, team_row


def _event(i: int, kind: str = "metrics") -> ProviderEvent:
    return ProviderEvent(
        id=f"ftevent-{i}",
        created_at=i,
        level="info",
        message=f"Step {i}/10: training loss=0.5",
        type=kind,
        data={"step": i, "total_steps": 10, "train_loss": 0.5},
    )


def _provider_events(session: Session, job_id: str) -> list[str]:
    query = select(JobEvent.provider_event_id).where(
        JobEvent.job_id == job_id, JobEvent.source == "provider"
    )
    return [e for e in session.scalars(query) if e]


def test_events_are_stored_once_even_when_fetched_twice(session: Session) -> None:
    team, _ = team_row(session)
    job = job_row(session, team)
    running = ProviderJob(id="ftjob-1", status="running")
    service.apply_provider_state(session, job.id, running, [_event(1), _event(2)])
    service.apply_provider_state(session, job.id, running, [_event(2), _event(3)])
    assert sorted(_provider_events(session, job.id)) == ["ftevent-1", "ftevent-2", "ftevent-3"]
    assert job.event_cursor == "ftevent-3"
    assert job.status == "running"
    assert job.started_at is not None


def test_quiet_jobs_back_off_and_changes_reset_the_interval(session: Session) -> None:
    base = get_settings().poll_interval_seconds
    team, _ = team_row(session)
    job = job_row(session, team, provider_status="running", status="running")
    quiet = ProviderJob(id="ftjob-1", status="running")
    service.apply_provider_state(session, job.id, quiet, [])
    service.apply_provider_state(session, job.id, quiet, [])
    assert job.poll_interval_seconds == base * 4
    service.apply_provider_state(session, job.id, quiet, [_event(7)])
    assert job.poll_interval_seconds == base


def test_success_records_the_model_and_emits_one_webhook(session: Session) -> None:
    team, _ = team_row(session)
    job = job_row(session, team, webhook_url="http://127.0.0.1:9/hook")
    done = ProviderJob(
        id="ftjob-1", status="succeeded", fine_tuned_model="ft:gpt:org::abc", trained_tokens=1234
    )
    service.apply_provider_state(session, job.id, done, [])
    service.apply_provider_state(session, job.id, done, [])
    assert (job.status, job.fine_tuned_model, job.trained_tokens) == (
        "succeeded",
        "ft:gpt:org::abc",
        1234,
    )
    assert job.finished_at is not None and job.next_poll_at is None
    deliveries = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job.id)
    ).all()
    assert [d.event_type for d in deliveries] == ["job.succeeded"]
    tasks = session.scalars(select(OutboxMessage.task)).all()
    assert tasks.count("webhooks.deliver") == 1


def test_provider_failure_keeps_the_providers_message(session: Session) -> None:
    team, _ = team_row(session)
    job = job_row(session, team)
    failed = ProviderJob(
        id="ftjob-1",
        status="failed",
        error_code="invalid_n_examples",
        error_message="Training file has 7 example(s), but must have at least 10 examples",
    )
    service.apply_provider_state(session, job.id, failed, [])
    assert job.status == "failed"
    assert job.error_code == "provider_failed"
    assert "at least 10 examples" in (job.error_message or "")
    assert "invalid_n_examples" in (job.error_message or "")


def test_a_finished_job_is_not_changed_by_late_provider_state(session: Session) -> None:
    team, _ = team_row(session)
    job = job_row(session, team, status="cancelled")
    service.apply_provider_state(
        session, job.id, ProviderJob(id="ftjob-1", status="succeeded"), [_event(1)]
    )
    assert job.status == "cancelled"
    assert _provider_events(session, job.id) == []
