"""The account's own fine-tuning limits (`GET /v1/fine_tuning/model_limits`), read before submit.

OpenAI refused new jobs to some organisations months before its 2027-01-06 wind-down; the
catalog cannot know which. Where the account says so, the job fails (or moves to a fallback)
before any file is uploaded, instead of dying at the provider.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.models import JobEvent
from tests.factories import team_row
from tests.unit.test_providers_kit import (
    MODEL,
    Emulator,
    admitted_job,
    ready_dataset,
    run_worker_in,
)
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

UPLOAD = "POST /v1/files"
CREATE = "POST /v1/fine_tuning/jobs"


def test_an_open_account_lists_each_model_until_the_wind_down(fresh_emulator: Emulator) -> None:
    provider = fresh_emulator.provider()
    assert provider.closed_for_account(MODEL, date(2026, 12, 6)) is None
    closed = provider.closed_for_account(MODEL, date(2027, 1, 6))
    assert closed is not None and "since 2027-01-06" in closed and MODEL in closed
    assert provider.closed_for_account("not-a-model", date(2027, 2, 1)) is None, "not listed"


def test_a_closed_account_fails_the_job_before_any_upload(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator
) -> None:
    fresh_emulator.control.close_account("2026-05-07")
    run_worker_in(session, monkeypatch, fresh_emulator)
    team, _ = team_row(session)
    job = admitted_job(session, team, ready_dataset(session, team))
    assert tasks.submit.apply(args=[job.id]).get() is None
    session.refresh(job)
    assert job.status == "failed" and job.provider_job_id is None
    assert job.error_code == "provider_unavailable"
    assert "no new fine-tuning jobs for gpt-4o-mini-2024-07-18 since 2026-05-07" in (
        job.error_message or ""
    )
    assert fresh_emulator.calls(UPLOAD) == 0 and fresh_emulator.calls(CREATE) == 0
    messages = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job.id))
    assert any("model_limits" in m for m in messages)


def test_without_the_route_the_catalog_alone_decides(fresh_emulator: Emulator) -> None:
    provider = fresh_emulator.provider()
    provider.client = provider.client.with_options(base_url=f"{fresh_emulator.root}/v1/absent")
    assert provider.closed_for_account(MODEL, date(2027, 2, 1)) is None, "a 404: nothing known"


def test_reopening_the_account_lets_jobs_through_again(fresh_emulator: Emulator) -> None:
    provider = fresh_emulator.provider()
    fresh_emulator.control.close_account("2026-07-02")
    assert "since 2026-07-02" in (provider.closed_for_account(MODEL, date(2026, 12, 6)) or "")
    fresh_emulator.control.close_account(None)
    assert provider.closed_for_account(MODEL, date(2026, 12, 6)) is None
