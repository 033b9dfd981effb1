"""Mirroring provider state: status mapping, deduplicated events, polling back-off, webhooks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.shared.jobs import service
from ftq.shared.models import JobEvent, OutboxMessage, WebhookDelivery
from ftq.shared.providers.base import ProviderEvent, ProviderJob
from ftq.shared.settings import get_settings
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
    quiet = ProviderJob(id="ftjob-1", status="running")
    job = job_row(
        session,
        team,
        provider_status="running",
        status="running",
        provider_fingerprint=quiet.fingerprint,
    )
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
    assert [d.event_type for d in deliveries] == ["job.running", "job.succeeded"], (
        "a job seen finished at once still reports that it ran"
    )
    tasks = session.scalars(select(OutboxMessage.task)).all()
    assert tasks.count("webhooks.deliver") == 2


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


def test_metrics_are_stored_once_per_step_and_the_result_csv_fills_gaps(
    session: Session,
) -> None:
    from ftq.shared.jobs import sync
    from ftq.shared.models import JobMetric

    team, _ = team_row(session)
    job = job_row(session, team, status="running")
    running = ProviderJob(id="ftjob-1", status="running")
    service.apply_provider_state(session, job.id, running, [_event(1), _event(2)])
    service.apply_provider_state(session, job.id, running, [_event(2), _event(3)])
    csv = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
    csv += b"".join(f"{i},0.{i},0.9,,\n".encode() for i in range(1, 6))
    result = sync.ResultFile("file-r", "results/x.csv", csv)
    done = ProviderJob(id="ftjob-1", status="succeeded", result_files=("file-r",))
    service.apply_provider_state(session, job.id, done, [], result=result)
    rows = session.scalars(select(JobMetric).where(JobMetric.job_id == job.id)).all()
    assert [(r.step, r.train_loss) for r in rows] == [
        (1, 0.5),
        (2, 0.5),
        (3, 0.5),
        (4, 0.4),
        (5, 0.5),
    ]
    assert rows[3].train_mean_token_accuracy == 0.9 and rows[3].valid_loss is None
    assert job.result_file_id == "file-r" and job.result_bytes == len(csv)


def test_result_csv_served_base64_is_decoded() -> None:
    import base64

    from ftq.shared.jobs import sync

    csv = b"step,train_loss\n1,0.5\n"
    assert sync.decode_result(base64.b64encode(csv)) == csv
    assert sync.decode_result(csv) == csv
    assert sync.decode_result(b"garbage!") == b"garbage!"
