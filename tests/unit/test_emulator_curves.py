"""End to end: the emulator draws each curve shape and ftq's sync diagnoses it on the job.

The worker's own code (submit, poll) runs against the emulator served on loopback; a job asks
for its curve with metadata `emulator_curve` (services/emulator/README.md, Curve shapes).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.worker.tasks import jobs as tasks
from ftq.shared.jobs import lifecycle, service
from ftq.shared.jobs.diagnosis import kinds
from ftq.shared.models import JobEvent
from tests.factories import team_row
from tests.unit.test_providers_kit import Emulator, admitted_job, ready_dataset, run_worker_in
from tests.unit.test_providers_kit import emulator as emulator  # fixtures
from tests.unit.test_providers_kit import fresh_emulator as fresh_emulator

EXPECTED = {
    "healthy": [],
    "overfit": ["overfitting"],
    "underfit": ["underfitting"],
    "diverge": ["diverging"],
    "noisy": ["noisy"],
}


@pytest.mark.parametrize("curve", sorted(EXPECTED))
def test_each_curve_shape_is_diagnosed_on_the_job_and_in_its_events(
    session: Session, monkeypatch: pytest.MonkeyPatch, fresh_emulator: Emulator, curve: str
) -> None:
    run_worker_in(session, monkeypatch, fresh_emulator)
    team, _ = team_row(session, f"curve-{curve}")
    dataset = ready_dataset(session, team)
    job = admitted_job(session, team, dataset, validation_dataset_id=dataset.id)
    job.method = {"type": "supervised", "hyperparameters": {"n_epochs": 4, "batch_size": 1}}
    job.job_metadata = {"emulator_curve": curve}
    session.flush()
    provider_job_id = tasks.submit_once(job.id)
    assert provider_job_id

    fresh_emulator.control.advance(provider_job_id, seconds=60 + 3 * 30)  # 30 of 48 steps
    tasks.poll(job.id)
    assert job.status == "running"
    assert job.diagnosis is not None and job.diagnosis["final"] is False

    fresh_emulator.control.advance(provider_job_id)  # to the end
    tasks.poll(job.id)
    assert job.status == "succeeded"
    assert job.diagnosis["final"] is True and job.diagnosis["total_steps"] == 48
    assert kinds(job.diagnosis) == EXPECTED[curve]
    for finding in job.diagnosis["findings"]:
        assert finding["evidence"]["steps"] and finding["suggestion"] and finding["message"]

    events = session.scalars(
        select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "diagnosis")
    ).all()
    warned = [e.data["kind"] for e in events if e.level == "warn" and e.data]
    assert sorted(set(warned)) == EXPECTED[curve] and len(warned) == len(set(warned)), (
        "one warn event per kind, not one per step"
    )
    assert events[-1].message.startswith("Final diagnosis")
    assert service.to_schema(session, job).diagnosis == job.diagnosis
    assert lifecycle.job_payload(job)["diagnosis"] == job.diagnosis
