"""A job's place counted by the database equals its place in the fair order computed in Python."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from ftq.shared.jobs import repository, scheduling
from ftq.shared.timeutil import utcnow
from tests.factories import job_row, team_row

PROVIDER, MODEL = "emulator", "queue-place-model"


@pytest.mark.parametrize(("seed", "jobs", "spread"), [(7, 40, 25), (11, 90, 6), (23, 120, 40)])
def test_the_counted_place_of_every_queued_job_is_its_fair_order_place(
    session: Session, seed: int, jobs: int, spread: int
) -> None:
    rnd = random.Random(seed)
    teams = [team_row(session, f"place-{seed}-{i}")[0] for i in range(6)]
    start = utcnow() - timedelta(hours=1)
    for _ in range(jobs):
        team = rnd.choice(teams)
        status = rnd.choice(["queued", "queued", "queued", "running", "submitted", "succeeded"])
        job_row(
            session,
            team,
            model=MODEL,
            status=status,
            provider_job_id=None,
            # Many share a timestamp, within a team and across teams: the order then falls back
            # to team and rank.
            created_at=start + timedelta(seconds=rnd.randint(0, spread)),
        )
    expected = scheduling.queue_positions(session, PROVIDER, MODEL)
    assert len(expected) >= jobs // 3 and len(set(expected.values())) == len(expected)
    for job_id, place in expected.items():
        assert repository.queue_place(session, job_id, PROVIDER, MODEL) == place, job_id
    finished = job_row(session, teams[0], model=MODEL, status="succeeded")
    assert repository.queue_place(session, finished.id, PROVIDER, MODEL) is None


def test_a_new_job_gets_its_exact_place_while_the_order_is_cached(session: Session) -> None:
    scheduling._CACHED_ORDERS.clear()
    team_a, team_b = team_row(session, "cached-a")[0], team_row(session, "cached-b")[0]
    jobs = [job_row(session, team_a, model=MODEL, status="queued") for _ in range(3)]
    assert scheduling.queue_position(session, jobs[0]) == 1  # computes and caches the order
    newcomer = job_row(session, team_b, model=MODEL, status="queued")
    # Team b holds nothing and has one job: it goes second, before team a's other two.
    assert scheduling.queue_position(session, newcomer) == 2
    assert scheduling.queue_positions(session, PROVIDER, MODEL)[newcomer.id] == 2
