"""Provider slots: fair order across teams, capacity settings, race safety on Postgres."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from ftq.shared.db import get_sessionmaker
from ftq.shared.ids import new_id
from ftq.shared.jobs import lifecycle, scheduling, service
from ftq.shared.models import Dataset, Job, OutboxMessage, ProviderCapacity, Team
from ftq.shared.settings import Settings, reset_settings
from ftq.shared.timeutil import utcnow
from tests.conftest import TEST_DATABASE_URL
from tests.factories import dataset_row, team_row

MODEL = "gpt-4o-mini-2024-07-18"


@dataclass
class Row:
    id: str
    team_id: str
    created_at: datetime


@pytest.fixture
def cap_two(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """FTQ_PROVIDER_CAPACITY gives the emulator two slots."""
    monkeypatch.setenv("FTQ_PROVIDER_CAPACITY", '{"emulator": 2}')
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def _queue(session: Session, team: Team, count: int, start: datetime, tag: str) -> list[Job]:
    dataset = _dataset(team, "ready")
    session.add(dataset)
    jobs = [
        Job(
            id=new_id("ftj"),
            team_id=team.id,
            status="queued",
            provider="emulator",
            model=MODEL,
            training_dataset_id=dataset.id,
            method={},
            job_metadata={"tag": f"{tag}{i + 1}"},
            ready_at=start,
            created_at=start + timedelta(seconds=i),
        )
        for i in range(count)
    ]
    session.add_all(jobs)
    session.flush()
    return jobs


def _tags(jobs: list[Job]) -> list[str]:
    return [job.job_metadata["tag"] for job in jobs]


def test_fair_order_alternates_teams_and_favours_those_holding_fewer_slots() -> None:
    t0 = utcnow()
    rows = [Row(f"a{i}", "A", t0 + timedelta(seconds=i)) for i in range(4)]
    rows += [Row(f"b{i}", "B", t0 + timedelta(seconds=10 + i)) for i in range(2)]
    assert [r.id for r in scheduling.fair_order(rows, {})] == ["a0", "b0", "a1", "b1", "a2", "a3"]
    busy_a = scheduling.fair_order(rows, {"A": 2})
    assert [r.id for r in busy_a][:3] == ["b0", "b1", "a0"]


def test_capacity_settings_most_specific_wins() -> None:
    settings = Settings(
        provider_capacity={"openai:gpt-4o-2024-08-06": 1, "openai": 5, "*": 7},
        default_provider_capacity=3,
    )
    assert scheduling.capacity_for("openai", "gpt-4o-2024-08-06", settings) == 1
    assert scheduling.capacity_for("openai", MODEL, settings) == 5
    assert scheduling.capacity_for("azure-openai", MODEL, settings) == 7
    assert scheduling.capacity_for("emulator", MODEL, Settings()) == 3


def test_two_teams_share_a_cap_of_two_fairly(session: Session, cap_two: None) -> None:
    team_a, _ = team_row(session, "fair-a")
    team_b, _ = team_row(session, "fair-b")
    start = utcnow() - timedelta(hours=1)
    a_jobs = _queue(session, team_a, 4, start, "A")
    _queue(session, team_b, 2, start + timedelta(minutes=5), "B")
    order: list[str] = []

    def admit() -> list[Job]:
        admitted = scheduling.schedule(session, "emulator", MODEL)
        order.extend(_tags(admitted))
        return admitted

    assert _tags(admit()) == ["A1", "B1"]
    assert admit() == [], "both slots are taken"
    positions = scheduling.queue_positions(session, "emulator", MODEL)
    assert sorted(positions.values()) == [1, 2, 3, 4]
    by_tag = {j.job_metadata["tag"]: j for j in session.scalars(select(Job)) if j.job_metadata}
    assert positions[by_tag["A2"].id] == 1 and positions[by_tag["B2"].id] == 2
    for tag in ("A1", "B1", "A2", "B2", "A3"):
        job = by_tag[tag]
        lifecycle.set_status(session, job, "succeeded", "done")
        admit()
    assert order == ["A1", "B1", "A2", "B2", "A3", "A4"]
    assert {j.status for j in a_jobs} == {"succeeded", "uploading"}


def test_a_team_with_fifty_queued_jobs_does_not_starve_a_team_with_one(
    session: Session, cap_two: None
) -> None:
    big, _ = team_row(session, "big")
    small, _ = team_row(session, "small")
    start = utcnow() - timedelta(hours=1)
    _queue(session, big, 50, start, "big")
    _queue(session, small, 1, start + timedelta(minutes=30), "small")
    assert _tags(scheduling.schedule(session, "emulator", MODEL)) == ["big1", "small1"]


def test_jobs_waiting_for_datasets_are_not_admitted(session: Session, cap_two: None) -> None:
    team, _ = team_row(session, "waiting")
    (job,) = _queue(session, team, 1, utcnow(), "W")
    job.ready_at = None
    assert scheduling.schedule(session, "emulator", MODEL) == []
    assert scheduling.queue_positions(session, "emulator", MODEL) == {job.id: 1}


@pytest.mark.skipif(not TEST_DATABASE_URL.startswith("postgresql"), reason="needs Postgres")
def test_concurrent_schedulers_never_hand_out_a_slot_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four workers schedule the same (provider, model) at once; committed rows, cleaned up."""
    model = f"race-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("FTQ_PROVIDER_CAPACITY", f'{{"emulator:{model}": 3}}')
    reset_settings()
    make = get_sessionmaker()
    with make() as db:
        first_outbox = db.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
        team, _ = team_row(db, f"race-{model}")
        for job in _queue(db, team, 10, utcnow(), "R"):
            job.model = model
        db.commit()
        team_id = team.id
    barrier = threading.Barrier(4)
    admitted: list[int] = []

    def worker() -> None:
        with make() as db:
            barrier.wait()
            admitted.append(len(scheduling.schedule(db, "emulator", model)))
            db.commit()

    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sum(admitted) == 3 and len(admitted) == 4
        with make() as db:
            uploading = db.scalar(
                select(func.count()).where(Job.model == model, Job.status == "uploading")
            )
            assert uploading == 3
    finally:
        with make() as db:
            db.execute(delete(Team).where(Team.id == team_id))
            db.execute(delete(OutboxMessage).where(OutboxMessage.id > first_outbox))
            db.execute(delete(ProviderCapacity).where(ProviderCapacity.model == model))
            db.commit()
        monkeypatch.undo()
        reset_settings()


def _parallel_creates(
    label: str, prepare: Callable[[Team], Dataset], refusal: str
) -> tuple[list[str], list[str], Callable[[], None]]:
    """Four teams set up by `prepare`, 16 creates each at once: (outcomes, team ids, cleanup)."""
    from concurrent.futures import ThreadPoolExecutor

    from ftq.shared.errors import QuotaExceeded
    from ftq.shared.jobs.schemas import JobCreate

    make, tag = get_sessionmaker(), uuid.uuid4().hex[:8]
    with make() as db:
        first_outbox = db.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0)))
        teams = [team_row(db, f"{label}-{tag}-{n}")[0] for n in range(4)]
        datasets = {}
        for team in teams:
            dataset = prepare(team)
            db.add(dataset)
            datasets[team.id] = dataset.id
        db.commit()
        team_ids = [team.id for team in teams]
    barrier = threading.Barrier(64)

    def create(team_id: str) -> str:
        barrier.wait(30)
        with make() as db:
            team = db.get(Team, team_id)
            assert team is not None
            request = JobCreate(model=MODEL, training_dataset=datasets[team_id])
            try:
                service.create(db, team, request)
            except QuotaExceeded as refused:
                assert refused.code == refusal, refused.message
                return "refused"
            db.commit()
            return "created"

    def cleanup() -> None:
        with make() as db:
            db.execute(delete(Team).where(Team.id.in_(team_ids)))
            db.execute(delete(OutboxMessage).where(OutboxMessage.id > first_outbox))
            db.commit()

    try:
        with ThreadPoolExecutor(max_workers=64) as pool:
            outcomes = list(pool.map(create, [t for t in team_ids for _ in range(16)]))
    except BaseException:
        cleanup()
        raise
    return outcomes, team_ids, cleanup


def _jobs_per_team(team_ids: list[str]) -> list[int]:
    with get_sessionmaker()() as db:
        rows = db.execute(
            select(Job.team_id, func.count()).where(Job.team_id.in_(team_ids)).group_by(Job.team_id)
        ).all()
    return sorted(count for _, count in rows)


def test_parallel_creates_across_teams_at_their_limit_never_pass_max_active_jobs(
    engine: Engine,
) -> None:
    """64 creates at once from four teams allowed two unfinished jobs each: eight jobs in all."""

    def prepare(team: Team) -> Dataset:
        team.max_active_jobs = 2
        return _dataset(team, "validating")

    outcomes, team_ids, cleanup = _parallel_creates("limit", prepare, "max_active_jobs")
    try:
        assert outcomes.count("created") == 8, outcomes
        assert _jobs_per_team(team_ids) == [2, 2, 2, 2]
    finally:
        cleanup()


def test_parallel_creates_across_teams_at_their_budget_never_overspend(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """64 creates at once from four teams whose monthly budget buys three jobs: twelve in all,
    then the scheduler admits them alternating teams."""

    def prepare(team: Team) -> Dataset:
        team.max_active_jobs, team.monthly_budget_usd = 64, 3.5  # $1 a job: three fit
        dataset = _dataset(team, "ready")
        dataset.n_examples = 20
        dataset.report = {"estimated_cost_usd": 1.0, "auto_n_epochs": 3}
        return dataset

    monkeypatch.setenv("FTQ_PROVIDER_CAPACITY", '{"emulator": 8}')
    reset_settings()
    outcomes, team_ids, cleanup = _parallel_creates("budget", prepare, "budget_exceeded")
    try:
        assert outcomes.count("created") == 12, outcomes
        assert _jobs_per_team(team_ids) == [3, 3, 3, 3]
        with get_sessionmaker()() as db:
            admitted = scheduling.schedule(db, "emulator", MODEL)
            firsts = [job.team_id for job in admitted[: len(team_ids)]]
            db.rollback()
        assert len(admitted) == 8
        assert sorted(firsts) == sorted(team_ids), "the first slots go one per team"
    finally:
        monkeypatch.undo()
        reset_settings()
        cleanup()


def _dataset(team: Team, status: str) -> Dataset:
    return dataset_row(team, status=status)
