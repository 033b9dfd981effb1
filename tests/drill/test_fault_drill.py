"""Fault drill: 200 jobs from four teams while workers die, Redis restarts and webhooks bounce.

Real Postgres, a private Redis (AOF on, as in production), the API under uvicorn, two Celery
workers, one beat and the emulator answering 10% of calls with 429 or 5xx (and losing 2% of
its answers). During submission a worker is SIGKILLed twice, Redis restarts once and the webhook
receiver is down for 30 s. Then nothing may be lost, twinned or left unsigned. A worker that dies
on its own is restarted, as compose and Kubernetes do, and named in the printed figures.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ftq.services.cli.client import TERMINAL, FtqAPIError, FtqClient
from ftq.shared.providers.base import METADATA_KEY
from tests.drill.harness import DrillReceiver, DrillStack, RedisServer, redis_server_or_skip
from tests.factories import chat_jsonl
from tests.services import postgres_url_or_skip

pytestmark = [pytest.mark.drill, pytest.mark.e2e]

MODEL = "gpt-4o-mini-2024-07-18"
TEAMS = ("alpha", "beta", "gamma", "delta")
JOBS = 200
SUBMIT_SECONDS = 45.0
EMULATOR_SPEED = 100.0
# 10% of provider calls answer 429 or 5xx; 2% more are handled but their answer is lost, so a
# create that "failed" may have succeeded: only the look-up by metadata prevents a twin.
EMULATOR_FAULTS = {
    "rate_429": 0.05,
    "rate_5xx": 0.05,
    "rate_lost_response": 0.02,
    "retry_after_ms": 500,
    "seed": 6,
}
RECEIVER_OUTAGE_SECONDS = 30.0
REDIS_OUTAGE_SECONDS = 6.0
# A submit makes several provider calls, so at 10% faults a few of 200 jobs meet six or seven
# failed attempts in a row: backing off 1, 2, 4 ... 60 s, such a job is retrying, not stuck.
SETTLE_SECONDS = 200.0
JOB_HOOK_PATH = "/hooks/job"
# Every fifth job also names its own webhook_url (signed with the team's signing secret).
JOB_URL_EVERY = 5
# 10% transient faults against eight retries: no job may fail, so no failure code is expected.
EXPECTED_FAILURE_CODES: frozenset[str] = frozenset()
DRILL_ENV = {
    "FTQ_POLL_INTERVAL_SECONDS": "0.5",
    "FTQ_POLL_MAX_INTERVAL_SECONDS": "2",
    "FTQ_SWEEP_INTERVAL_SECONDS": "0.5",
    "FTQ_WEBHOOK_TIMEOUT_SECONDS": "5",
    # DESIGN's schedule (0, 5 s, 5 min, ...) scaled by 0.02: 0, 0.1 s, 6 s, 36 s, 144 s, ...
    "FTQ_WEBHOOK_RETRY_SCALE": "0.02",
    "FTQ_LOG_LEVEL": "WARNING",
    # Slots per (provider, model) high enough that 200 short jobs drain within the drill.
    "FTQ_DEFAULT_PROVIDER_CAPACITY": "64",
    # A submit task held by a killed worker comes back only after Redis' visibility timeout;
    # the sweep resubmits after this long without an attempt (retries back off to 60 s at most).
    "FTQ_SUBMIT_STUCK_SECONDS": "90",
}


@dataclass
class DrillTeam:
    """A team of the drill with its key, datasets, endpoint and jobs."""

    name: str
    client: FtqClient
    job_hook_url: str = ""
    datasets: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)

    @property
    def hook_path(self) -> str:
        """Where this team's endpoint receives."""
        return f"/hooks/{self.name}"


@dataclass
class Figures:
    """What the drill did and saw."""

    started: float = field(default_factory=time.monotonic)
    jobs: int = 0
    kills: int = 0
    redis_restarts: int = 0
    down_since: dict[str, float] = field(default_factory=dict)
    downtime: dict[str, float] = field(default_factory=dict)
    post_seconds: list[tuple[float, bool]] = field(default_factory=list)
    submit_errors: list[str] = field(default_factory=list)
    provider_faults: dict[str, int] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)

    def went_down(self, what: str) -> None:
        """Note the start of an outage."""
        self.down_since[what] = time.monotonic()

    def came_back(self, what: str) -> None:
        """Note the end of an outage and its length."""
        self.downtime[what] = time.monotonic() - self.down_since.pop(what)


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[tuple[DrillStack, DrillReceiver]]:
    """The running stack and receiver, torn down whatever happens."""
    postgres_url_or_skip()
    redis_server_or_skip()
    redis_server = RedisServer(tmp_path / "redis")
    receiver = DrillReceiver()
    stack = DrillStack(tmp_path, redis_server, DRILL_ENV)
    try:
        redis_server.start()
        receiver.up()
        stack.start(EMULATOR_SPEED)
        yield stack, receiver
    finally:
        stack.stop()
        receiver.down()
        redis_server.stop()


@pytest.mark.timeout(450)
def test_nothing_is_lost_twinned_or_unsigned_under_faults(
    drill: tuple[DrillStack, DrillReceiver], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, receiver = drill
    figures = Figures()
    with stack.emulator() as emulator:
        emulator.post("/_emulator/faults", json=EMULATOR_FAULTS).raise_for_status()
        teams = [enroll(stack, receiver, name, i) for i, name in enumerate(TEAMS)]
        run_timeline(stack, timeline(stack, receiver, teams, figures), figures)
        jobs = wait_terminal(stack, teams)
        emulator.post("/_emulator/faults", json={}).raise_for_status()
        figures.provider_faults = emulator.get("/_emulator/stats").json()["faults_injected"]
        deliveries = wait_deliveries_settled(stack, teams)

        assert not figures.submit_errors, figures.submit_errors
        assert any(down for _, down in figures.post_seconds), "no job sent while Redis was down"
        assert len(jobs) == JOBS
        assert_outcomes(jobs)
        assert_one_provider_job_each(emulator, jobs)
        assert_no_event_lost(emulator, teams, jobs)
    arrivals = receiver.snapshot()
    assert_deliveries_arrived_signed(deliveries, arrivals, teams)
    assert_terminal_events_once(jobs, arrivals, teams)
    report(capsys, stack, figures, deliveries, arrivals)


def enroll(stack: DrillStack, receiver: DrillReceiver, name: str, index: int) -> DrillTeam:
    """Create a team, register its endpoint and upload its first dataset."""
    admin = FtqClient(stack.url, "dev-admin-token")
    created = admin.create_team(f"drill-{name}", max_active_jobs=JOBS)
    team = DrillTeam(name, FtqClient(stack.url, created["api_key"]["key"]))
    team.job_hook_url = receiver.url(f"{JOB_HOOK_PATH}/{name}")
    endpoint = team.client.request(
        "POST", "/v1/webhook-endpoints", json={"url": receiver.url(team.hook_path)}
    )
    receiver.secrets[team.hook_path] = endpoint["secret"]
    # Jobs with their own webhook_url are signed with their team's signing secret; one path
    # per team keeps each arrival checkable against exactly one secret.
    receiver.secrets[f"{JOB_HOOK_PATH}/{name}"] = created["signing_secret"]
    upload(team, index, generation=0, tmp=stack.workdir)
    assert team.client.wait_dataset(team.datasets[-1], timeout=60)["status"] == "ready"
    return team


def upload(team: DrillTeam, index: int, generation: int, tmp: Path) -> None:
    """Upload a small dataset only this team and generation has."""
    path = tmp / f"{team.name}-{generation}.jsonl"
    path.write_bytes(chat_jsonl(20, offset=index * 1000 + generation * 100))
    team.datasets.append(team.client.upload_dataset(path)["id"])


Action = tuple[float, str, Callable[[], None]]


def timeline(
    stack: DrillStack, receiver: DrillReceiver, teams: list[DrillTeam], figures: Figures
) -> list[Action]:
    """Job submissions spread over SUBMIT_SECONDS with the faults among them."""

    def kill(slot: str) -> Callable[[], None]:
        def act() -> None:
            stack.kill_worker(slot)
            figures.kills += 1

        return act

    def redis_down() -> None:
        stack.redis.stop()
        figures.went_down("redis")

    def redis_up() -> None:
        stack.redis.start()
        figures.came_back("redis")
        figures.redis_restarts += 1

    def receiver_down() -> None:
        receiver.down()
        figures.went_down("receiver")

    def receiver_up() -> None:
        receiver.up()
        figures.came_back("receiver")

    def fresh_datasets() -> None:
        for index, team in enumerate(teams):
            upload(team, index, generation=1, tmp=stack.workdir)

    actions: list[Action] = [
        (8.0, "SIGKILL worker-1 (restarted at once)", kill("worker-1")),
        (14.0, "receiver down", receiver_down),
        (14.0 + RECEIVER_OUTAGE_SECONDS, "receiver up", receiver_up),
        (20.0, "redis stop", redis_down),
        (21.0, "new datasets while redis is down", fresh_datasets),
        (20.0 + REDIS_OUTAGE_SECONDS, "redis start", redis_up),
        (32.0, "SIGKILL worker-2 (restarted at once)", kill("worker-2")),
    ]
    for i in range(JOBS):
        team = teams[i % len(teams)]
        actions.append((i * SUBMIT_SECONDS / JOBS, "", submitter(team, i, figures)))
    return sorted(actions, key=lambda action: action[0])


def submitter(team: DrillTeam, i: int, figures: Figures) -> Callable[[], None]:
    """Submit job i on the team's newest dataset; an API error is recorded, not retried."""

    def act() -> None:
        body: dict[str, Any] = {
            "model": MODEL,
            "training_dataset": team.datasets[-1],
            "method": {"type": "supervised", "hyperparameters": {"n_epochs": 2}},
            "suffix": f"drill-{i}",
            "metadata": {"drill": str(i)},
        }
        if i % JOB_URL_EVERY == 0:
            body["webhook_url"] = team.job_hook_url
        redis_down, sent = "redis" in figures.down_since, time.monotonic()
        try:
            team.jobs.append(team.client.request("POST", "/v1/jobs", json=body)["id"])
            figures.jobs += 1
        except (FtqAPIError, httpx.HTTPError) as exc:
            figures.submit_errors.append(f"job {i}: {exc!r}")
        figures.post_seconds.append((time.monotonic() - sent, redis_down))

    return act


def run_timeline(stack: DrillStack, actions: list[Action], figures: Figures) -> None:
    """Faults on their own thread, on time; submissions meanwhile, late behind slow answers."""
    faults = [action for action in actions if action[1]]
    failures: list[BaseException] = []

    def run_faults() -> None:
        try:
            run_actions(faults, start, figures, stack.check_alive)
        except BaseException as exc:  # re-raised in the test's thread below
            failures.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=run_faults, daemon=True)
    thread.start()
    run_actions([action for action in actions if not action[1]], start, figures, lambda: None)
    thread.join(timeout=120)
    if failures:
        raise failures[0]
    assert not thread.is_alive(), "the fault schedule hangs"


def run_actions(
    actions: list[Action], start: float, figures: Figures, between: Callable[[], None]
) -> None:
    """Run each action at its offset from start, calling `between` while waiting."""
    for offset, label, act in actions:
        while (wait := start + offset - time.monotonic()) > 0:
            between()
            time.sleep(min(wait, 0.2))
        if label:
            figures.timeline.append(f"{time.monotonic() - start:5.1f} s  {label}")
        act()


def wait_terminal(stack: DrillStack, teams: list[DrillTeam]) -> dict[str, dict[str, Any]]:
    """Every job of every team once all are terminal; fails with the stragglers at the deadline."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        jobs = {job["id"]: job for team in teams for job in team.client.list_all("/v1/jobs")}
        waiting = {i: j["status"] for i, j in jobs.items() if j["status"] not in TERMINAL}
        if not waiting:
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(waiting)} jobs not terminal {SETTLE_SECONDS:.0f} s after submission: "
                f"{dict(Counter(waiting.values()))}\n{timelines(teams, list(waiting)[:3])}\n"
                f"{stack.logs()}"
            )
        stack.check_alive()
        time.sleep(2)


def timelines(teams: list[DrillTeam], job_ids: list[str]) -> str:
    """The ftq events of some jobs, to show where they stopped."""
    lines = []
    for job_id in job_ids:
        team = next(t for t in teams if job_id in t.jobs)
        events = team.client.list_all(f"/v1/jobs/{job_id}/events")
        lines += [f"{job_id}:", *(f"  {e['created_at']} {e['message']}" for e in events)]
    return "\n".join(lines)


def wait_deliveries_settled(stack: DrillStack, teams: list[DrillTeam]) -> list[dict[str, Any]]:
    """Every team's delivery log once nothing is pending any more."""
    deadline = time.monotonic() + 60
    while True:
        deliveries = [d for t in teams for d in t.client.list_all("/v1/webhook-deliveries")]
        pending = [d for d in deliveries if d["status"] == "pending"]
        if not pending:
            return deliveries
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} deliveries still pending, e.g. {pending[:3]}")
        stack.check_alive()
        time.sleep(1)


def assert_outcomes(jobs: dict[str, dict[str, Any]]) -> None:
    """Every job succeeded, or failed with a code the drill expects."""
    unexpected = [
        (job["id"], job["status"], job["error"])
        for job in jobs.values()
        if job["status"] != "succeeded"
        and not (job["status"] == "failed" and job["error"]["code"] in EXPECTED_FAILURE_CODES)
    ]
    assert not unexpected, f"{len(unexpected)} jobs ended badly, e.g. {unexpected[:5]}"


def assert_one_provider_job_each(emulator: httpx.Client, jobs: dict[str, dict[str, Any]]) -> None:
    """The provider holds exactly one job per ftq job, the one ftq recorded."""
    by_ftq_id: dict[str | None, list[str]] = defaultdict(list)
    for provider_job in emulator_list(emulator, "/v1/fine_tuning/jobs"):
        ftq_id = (provider_job.get("metadata") or {}).get(METADATA_KEY)
        by_ftq_id[ftq_id].append(provider_job["id"])
    twins = {ftq_id: ids for ftq_id, ids in by_ftq_id.items() if len(ids) > 1}
    assert not twins, f"{len(twins)} ftq jobs have twins at the provider, e.g. {list(twins)[:5]}"
    assert set(by_ftq_id) == set(jobs), "provider jobs and ftq jobs differ"
    wrong = [i for i, job in jobs.items() if job["provider_job_id"] != by_ftq_id[i][0]]
    assert not wrong, f"ftq recorded another provider job for {wrong[:5]}"


def emulator_list(emulator: httpx.Client, path: str) -> list[dict[str, Any]]:
    """Every item of one of the emulator's newest-first lists."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        response = emulator.get(path, params=params)
        response.raise_for_status()
        page = response.json()
        items.extend(page["data"])
        if not page["has_more"]:
            return items
        params["after"] = page["data"][-1]["id"]


def assert_no_event_lost(
    emulator: httpx.Client, teams: list[DrillTeam], jobs: dict[str, dict[str, Any]]
) -> None:
    """Datasets all validated; each job's timeline holds its lifecycle and every provider event."""
    for team in teams:
        for dataset_id in team.datasets:
            status = team.client.request("GET", f"/v1/datasets/{dataset_id}")["status"]
            assert status == "ready", f"{team.name} dataset {dataset_id} is {status}"
        for job_id in team.jobs:
            job = jobs[job_id]
            events = team.client.list_all(f"/v1/jobs/{job_id}/events")
            assert_lifecycle(job, [e["message"] for e in events if e["source"] == "ftq"])
            mirrored = Counter(e["message"] for e in events if e["source"] == "provider")
            path = f"/v1/fine_tuning/jobs/{job['provider_job_id']}/events"
            at_provider = Counter(e["message"] for e in emulator_list(emulator, path))
            assert mirrored == at_provider, (
                f"{job_id}: lost {at_provider - mirrored}, doubled {mirrored - at_provider}"
            )


def assert_lifecycle(job: dict[str, Any], messages: list[str]) -> None:
    """ftq's own events: created, submitted as the recorded provider job, finished."""
    assert messages and "created" in messages[0].lower(), (job["id"], messages)
    assert any(job["provider_job_id"] in m for m in messages), (job["id"], messages)
    if job["status"] == "succeeded":
        assert job["fine_tuned_model"] in messages[-1], (job["id"], messages)


def hook_path(url: str) -> str:
    """The receiver path a delivery was addressed to."""
    return httpx.URL(url).path


def assert_deliveries_arrived_signed(
    deliveries: list[dict[str, Any]], arrivals: list[Any], teams: list[DrillTeam]
) -> None:
    """Every logged delivery succeeded and arrived verified; nothing arrived unlogged."""
    failed = [
        (d["id"], d["event_type"], d["last_error"])
        for d in deliveries
        if d["status"] != "succeeded"
    ]
    assert not failed, f"{len(failed)} deliveries did not succeed, e.g. {failed[:5]}"
    unverified = [(a.path, a.webhook_id) for a in arrivals if not a.verified]
    assert not unverified, f"{len(unverified)} arrivals failed verification: {unverified[:5]}"
    logged = {(d["event_id"], hook_path(d["url"])) for d in deliveries}
    arrived = {(a.webhook_id, a.path) for a in arrivals}
    assert logged <= arrived, f"never arrived: {sorted(logged - arrived)[:5]}"
    assert arrived <= logged, f"arrived without a delivery record: {sorted(arrived - logged)[:5]}"
    subjects: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for arrival in arrivals:
        subjects[arrival.webhook_id].add((arrival.event["type"], arrival.event["data"]["id"]))
    shared = {wid: s for wid, s in subjects.items() if len(s) > 1}
    assert not shared, f"one webhook-id for several events: {shared}"


def assert_terminal_events_once(
    jobs: dict[str, dict[str, Any]], arrivals: list[Any], teams: list[DrillTeam]
) -> None:
    """Each event arrived at each of its destinations under exactly one webhook-id."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    paths: dict[tuple[str, str], set[str]] = defaultdict(set)
    for arrival in arrivals:
        key = (arrival.event["data"]["id"], arrival.event["type"])
        ids[key].add(arrival.webhook_id)
        paths[key].add(arrival.path)
    twice = {key: wids for key, wids in ids.items() if len(wids) > 1}
    assert not twice, f"{len(twice)} events sent under two webhook-ids, e.g. {list(twice)[:5]}"
    for team in teams:
        for dataset_id in team.datasets:
            assert team.hook_path in paths[(dataset_id, "dataset.ready")], dataset_id
        for job_id in team.jobs:
            job = jobs[job_id]
            expected = {team.hook_path} | (
                {hook_path(team.job_hook_url)} if job["webhook_url"] else set()
            )
            got = paths[(job_id, f"job.{job['status']}")]
            assert expected <= got, f"{job_id}: terminal event reached {got}, not {expected}"


def report(
    capsys: pytest.CaptureFixture[str],
    stack: DrillStack,
    figures: Figures,
    deliveries: list[dict[str, Any]],
    arrivals: list[Any],
) -> None:
    """Print what the drill did and saw, past pytest's capture."""
    per_delivery = Counter((a.webhook_id, a.path) for a in arrivals)
    first: dict[tuple[str, str], float] = {}
    for arrival in arrivals:
        first.setdefault((arrival.webhook_id, arrival.path), arrival.delay)
    during_outage = [seconds for seconds, redis_down in figures.post_seconds if redis_down]
    lines = [
        "fault drill:",
        *(f"  {line}" for line in figures.timeline),
        f"  jobs {figures.jobs}, all terminal; provider jobs {figures.jobs} (one each)",
        f"  worker SIGKILLs {figures.kills}, Redis restarts {figures.redis_restarts} "
        f"(down {figures.downtime['redis']:.1f} s), "
        f"receiver down {figures.downtime['receiver']:.1f} s",
        f"  workers that died on their own (restarted): {stack.crashes or 'none'}",
        f"  provider faults injected {figures.provider_faults}",
        f"  POST /v1/jobs slowest {max(s for s, _ in figures.post_seconds):.2f} s; "
        f"{len(during_outage)} accepted while Redis was down, "
        f"slowest {max(during_outage, default=0):.2f} s",
        f"  deliveries {len(deliveries)}, POSTs received {len(arrivals)}, "
        f"duplicate deliveries seen {sum(n - 1 for n in per_delivery.values())}",
        f"  max delivery delay {max(first.values()):.1f} s, "
        f"wall time {time.monotonic() - figures.started:.0f} s",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
