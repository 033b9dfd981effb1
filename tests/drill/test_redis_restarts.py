"""Redis restarted ten times under load: every job ends, none twinned, no worker restarted.

The fault drill's stack (real Postgres, a private Redis with AOF, the API under uvicorn, two
Celery workers, one beat, the emulator) takes 80 jobs from four teams, a quarter of them with an
eval and a fifth with their own webhook URL, while Redis is stopped and started ten times. A
worker that exits on its own would be restarted by the harness and named in `stack.crashes`: the
drill asserts there is none (Celery 5.7's crash on a Redis restart: services/worker/broker.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from ftq.services.cli.client import FtqAPIError
from tests.drill.harness import DrillReceiver, DrillStack
from tests.drill.test_fault_drill import (
    MODEL,
    Action,
    DrillTeam,
    Figures,
    assert_deliveries_arrived_signed,
    assert_one_provider_job_each,
    enroll,
    run_timeline,
    wait_deliveries_settled,
    wait_terminal,
)
from tests.drill.test_fault_drill import drill as drill  # the stack fixture

pytestmark = [pytest.mark.drill, pytest.mark.e2e]

TEAMS = ("alpha", "beta", "gamma", "delta")
JOBS = 80
RESTARTS = 10
FIRST_RESTART = 4.0
RESTART_EVERY = 6.0
DOWN_SECONDS = 2.0
SUBMIT_SECONDS = FIRST_RESTART + RESTARTS * RESTART_EVERY
EVAL_EVERY = 4
JOB_URL_EVERY = 5


@pytest.mark.timeout(450)
def test_ten_redis_restarts_lose_nothing_and_crash_no_worker(
    drill: tuple[DrillStack, DrillReceiver],
) -> None:
    stack, receiver = drill
    figures = Figures()
    with stack.emulator() as emulator:
        teams = [enroll(stack, receiver, name, i) for i, name in enumerate(TEAMS)]
        run_timeline(stack, _timeline(stack, teams, figures), figures)
        jobs = wait_terminal(stack, teams)
        assert not figures.submit_errors, figures.submit_errors
        assert figures.redis_restarts == RESTARTS
        assert len(jobs) == JOBS
        assert {job["status"] for job in jobs.values()} == {"succeeded"}, _failures(jobs)
        assert_one_provider_job_each(emulator, jobs)
        evals = [job["eval"] for job in jobs.values() if job.get("eval")]
        assert len(evals) == JOBS // EVAL_EVERY
        _wait_evals(stack, teams)
    deliveries = wait_deliveries_settled(stack, teams)
    assert_deliveries_arrived_signed(deliveries, receiver.snapshot(), teams)
    assert stack.crashes == [], f"workers exited on a Redis restart: {stack.crashes}"
    print(
        f"\nRedis restarts {figures.redis_restarts}, jobs {len(jobs)}, deliveries "
        f"{len(deliveries)}, workers restarted by the harness: none"
    )


def _timeline(stack: DrillStack, teams: list[DrillTeam], figures: Figures) -> list[Action]:
    """Submissions spread over the drill; Redis down for 2 s every 6 s, ten times."""

    def down() -> None:
        stack.redis.stop()
        figures.went_down("redis")

    def up() -> None:
        stack.redis.start()
        figures.came_back("redis")
        figures.redis_restarts += 1

    actions: list[Action] = []
    for n in range(RESTARTS):
        at = FIRST_RESTART + n * RESTART_EVERY
        actions += [(at, f"redis stop {n + 1}", down), (at + DOWN_SECONDS, "redis start", up)]
    for i in range(JOBS):
        team = teams[i % len(teams)]
        actions.append((i * SUBMIT_SECONDS / JOBS, "", _submitter(team, i, figures)))
    return sorted(actions, key=lambda action: action[0])


def _submitter(team: DrillTeam, i: int, figures: Figures) -> Any:
    def act() -> None:
        body: dict[str, Any] = {
            "model": MODEL,
            "training_dataset": team.datasets[-1],
            "method": {"type": "supervised", "hyperparameters": {"n_epochs": 1}},
            "suffix": f"restart-{i}",
        }
        if i % EVAL_EVERY == 0:
            body.update(validation_split=0.25, eval={"grader": "rouge_l", "dataset": None})
        if i % JOB_URL_EVERY == 0:
            body["webhook_url"] = team.job_hook_url
        try:
            team.jobs.append(team.client.request("POST", "/v1/jobs", json=body)["id"])
            figures.jobs += 1
        except (FtqAPIError, OSError) as exc:
            figures.submit_errors.append(f"job {i}: {exc!r}")

    return act


def _wait_evals(stack: DrillStack, teams: list[DrillTeam]) -> None:
    """Every job's eval finished (completed), checking the workers meanwhile."""
    import time

    deadline = time.monotonic() + 120
    while True:
        jobs = [job for team in teams for job in team.client.list_all("/v1/jobs")]
        states = [job["eval"]["status"] for job in jobs if job.get("eval")]
        if states and all(state in {"completed", "failed", "skipped"} for state in states):
            assert set(states) == {"completed"}, states
            return
        assert time.monotonic() < deadline, f"evals not done: {states}"
        stack.check_alive()
        time.sleep(1)


def _failures(jobs: dict[str, dict[str, Any]]) -> list[Any]:
    return [(j["id"], j["status"], j.get("error")) for j in jobs.values()][:5]
