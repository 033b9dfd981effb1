"""The polled read builds a job's view from a row, not an ORM object: the same view, to the byte."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from ftq.shared.errors import NotFound
from ftq.shared.jobs import service
from ftq.shared.timeutil import utcnow
from tests.factories import job_row, team_row


def test_a_jobs_row_view_equals_its_orm_view_in_every_field(session: Session) -> None:
    team, _ = team_row(session)
    job = job_row(
        session,
        team,
        status="failed",
        suffix="tickets",
        seed=7,
        fallback_providers=["together"],
        model_map={"together": "meta-llama/Llama-3.2-3B-Instruct"},
        webhook_url="https://hooks.example.com/ftq",
        provider_status="failed",
        fine_tuned_model="ft:gpt-4o-mini-2024-07-18:org::abc",
        trained_tokens=1234,
        result_file_id="file-result",
        result_bytes=99,
        estimated_cost_usd=Decimal("1.2345"),
        error_code="invalid_training_file",
        error_message="line 3: no assistant message",
        eval_request={"grader": "exact"},
        diagnosis={"verdict": "healthy"},
        started_at=utcnow(),
        finished_at=utcnow(),
    )
    job.job_metadata = {"ticket": "T-1"}
    job.method = {"type": "supervised", "hyperparameters": {"n_epochs": 2}}
    session.flush()
    session.expire_all()

    from_orm = service.to_schema(session, service.get(session, team, job.id))
    from_row = service.view(session, team, job.id)

    assert from_row.model_dump_json() == from_orm.model_dump_json()
    assert from_row.metadata == {"ticket": "T-1"}
    assert from_row.error is not None and from_row.error.code == "invalid_training_file"
    assert from_row.eval is not None and from_row.eval.status == "skipped"


def test_another_teams_job_is_not_found_by_the_row_view(session: Session) -> None:
    owner, _ = team_row(session, "owner")
    other, _ = team_row(session, "other")
    job = job_row(session, owner)

    with pytest.raises(NotFound):
        service.view(session, other, job.id)
