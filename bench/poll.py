"""Benchmark the provider sweep: list-based (ftq's) against a naive retrieve-per-job baseline.

    python bench/poll.py [--jobs 1000] [--change 0.01] [--sweeps 5] [--interval 15]

Serves the OpenAI emulator (a test double of OpenAI, frozen: jobs move only when told) on a
loopback port and creates `--jobs` fine-tuning jobs there, a third each validating, queued and
running, all followed by ftq (a temporary SQLite database). After a first sync, every job is put
in the steady state of a job that has been quiet for a while (poll interval 10 min, next check
spread evenly over it). Then, with a simulated clock advancing `--interval` seconds per sweep,
each of `--sweeps` sweeps is preceded by moving `--change` of the jobs (1%: 10 of 1,000) forward
30 emulated seconds at the emulator, and runs:
  (a) ftq's sweep (`ftq.services.worker.tasks.jobs.sweep_provider`): the job list, pages of 100,
      then events only for jobs whose listed state moved, plus running jobs whose back-off check
      is due;
  (b) the naive baseline, in the same run and on the same jobs: retrieve every job, then read
      events for those whose state moved (it sees no new steps of running jobs at all).
Both store what they read in ftq's database. Calls are counted by the emulator itself; times are
wall clock per sweep, database work included.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(tempfile.mkdtemp(prefix="ftq-bench-poll-"))
os.environ.update(
    {
        "FTQ_DATA_DIR": str(DATA),
        "FTQ_DATABASE_URL": f"sqlite:///{DATA / 'ftq.sqlite3'}",
        "FTQ_BROKER_URL": "memory://",
        "FTQ_EMBEDDED_WORKER": "false",
        "FTQ_PROVIDER": "emulator",
    }
)

from openai import OpenAI  # noqa: E402
from sqlalchemy import update  # noqa: E402

from ftq.services.emulator.app import create_app  # noqa: E402
from ftq.services.emulator.testing import EmulatorControl, serve_in_thread  # noqa: E402
from ftq.services.worker.tasks import jobs as tasks  # noqa: E402
from ftq.shared.db import session_scope  # noqa: E402
from ftq.shared.ids import new_id  # noqa: E402
from ftq.shared.migrate import upgrade  # noqa: E402
from ftq.shared.models import Dataset, Job, Team  # noqa: E402
from ftq.shared.providers.base import JobSpec  # noqa: E402
from ftq.shared.providers.openai_provider import OpenAIProvider  # noqa: E402
from ftq.shared.settings import get_settings  # noqa: E402
from ftq.shared.timeutil import utcnow  # noqa: E402

MODEL = "gpt-4o-mini-2024-07-18"
LINE = (
    '{"messages": [{"role": "user", "content": "How many metres is %d km?"}, '
    '{"role": "assistant", "content": "%d m."}]}\n'
)


def api_calls(control: EmulatorControl) -> int:
    """Requests the emulator answered on its API (its own controls excluded)."""
    calls = control.stats()["calls"]
    return sum(int(n) for route, n in calls.items() if " /_emulator" not in route)


def setup(provider: OpenAIProvider, control: EmulatorControl, count: int) -> list[str]:
    """`count` jobs at the emulator (a third each validating, queued, running), followed by ftq."""
    path = DATA / "train.jsonl"
    path.write_text("".join(LINE % (i, i * 1000) for i in range(20)))
    file_id = provider.upload_file(path, "train.jsonl")
    ids: list[str] = []
    with session_scope() as session:
        team = Team(id=new_id("team"), name="bench", signing_secret_encrypted="-")
        session.add(team)
        session.flush()
        dataset = Dataset(
            id=new_id("ds"),
            team_id=team.id,
            name="train.jsonl",
            purpose="fine-tune",
            bytes=path.stat().st_size,
            sha256="0" * 64,
            blob_key="none",
            status="ready",
            provider_files={"emulator": file_id},
        )
        session.add(dataset)
        session.flush()
        for _ in range(count):
            job = Job(
                id=new_id("ftj"),
                team_id=team.id,
                status="submitted",
                provider="emulator",
                model=MODEL,
                training_dataset_id=dataset.id,
                method={},
                job_metadata={},
            )
            created = provider.create_job(
                JobSpec(ftq_job_id=job.id, model=MODEL, training_file=file_id)
            )
            job.provider_job_id, job.provider_created_at = created.id, created.created_at
            job.provider_status = created.status
            session.add(job)
            ids.append(created.id)
    third = count // 3
    control.advance_many(job_ids=ids[third : 2 * third], seconds=40)  # queued
    control.advance_many(job_ids=ids[2 * third :], seconds=70)  # running, a few steps in
    return ids


def settle(now: datetime, rng: random.Random) -> None:
    """Every job as if quiet for a while: 10-minute interval, next check spread over it."""
    longest = get_settings().poll_max_interval_seconds
    with session_scope() as session:
        for job in session.query(Job).filter(Job.status.in_(("submitted", "running"))):
            job.poll_interval_seconds = longest
            job.next_poll_at = now + timedelta(seconds=rng.uniform(0, longest))


def naive_sweep(provider: OpenAIProvider, now: datetime) -> int:
    """The baseline: retrieve every followed job; read events of those whose state moved."""
    with session_scope() as session:
        followed = tasks.sync.tracked(session, "emulator", now)
    synced = 0
    for job in followed:
        state = provider.get_job(job.provider_job_id)
        if state.fingerprint != job.fingerprint:
            tasks.sync_job(provider, job, state, now=now)
            synced += 1
    return synced


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both sweeps, `args.sweeps` times each; the per-sweep figures."""
    upgrade(get_settings().resolved_database_url)
    root, stop = serve_in_thread(create_app(speed=1.0))
    control = EmulatorControl(root)
    control.speed(0)
    client = OpenAI(api_key="bench", base_url=f"{root}/v1", max_retries=0, timeout=60)
    provider = OpenAIProvider("emulator", client)
    tasks.get_provider = lambda name: provider  # type: ignore[assignment]
    tasks.relay_now = lambda: 0  # no broker in the benchmark: nothing listens
    rng = random.Random(args.seed)
    try:
        started = time.perf_counter()
        ids = setup(provider, control, args.jobs)
        print(f"setup: {len(ids)} jobs at the emulator in {time.perf_counter() - started:.1f} s")
        clock = utcnow()
        before = api_calls(control)
        first = tasks.sweep_provider("emulator", provider=provider, now=clock)
        print(
            f"first sync (every job new to ftq): {api_calls(control) - before} calls, "
            f"{len(first.synced)} jobs read"
        )
        changed_per_sweep = max(1, round(args.jobs * args.change))
        results: dict[str, list[tuple[int, float, int]]] = {"list": [], "naive": []}
        for kind in ("list", "naive"):
            settle(clock, rng)
            for sweep in range(1, args.sweeps + 1):
                now = clock + timedelta(seconds=args.interval * sweep)
                movers = rng.sample(ids, changed_per_sweep)
                control.advance_many(job_ids=movers, seconds=30)
                before, started = api_calls(control), time.perf_counter()
                if kind == "list":
                    report = tasks.sweep_provider("emulator", provider=provider, now=now)
                    synced = len(report.synced)
                else:
                    synced = naive_sweep(provider, now)
                elapsed = time.perf_counter() - started
                results[kind].append((api_calls(control) - before, elapsed, synced))
            clock += timedelta(seconds=args.interval * (args.sweeps + 1))
            with session_scope() as session:  # finished jobs stay followed for the next phase
                finished = Job.status.in_(("succeeded", "failed"))
                session.execute(update(Job).where(finished).values(status="running"))
        return {"jobs": args.jobs, "changed_per_sweep": changed_per_sweep, **results}
    finally:
        control.close()
        stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--change", type=float, default=0.01, help="share of jobs moving per sweep")
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--interval", type=float, default=15.0, help="simulated s between sweeps")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    figures = run(args)
    print(
        f"\n{figures['jobs']} active jobs, {figures['changed_per_sweep']} moved before each sweep, "
        f"sweeps {args.interval:g} s apart (simulated)"
    )
    print(f"{'sweep':<28}{'calls/sweep':>12}{'s/sweep':>10}{'jobs synced':>13}")
    means = {}
    for kind, label in (("list", "ftq list-based"), ("naive", "naive retrieve-per-job")):
        rows = figures[kind]
        calls = statistics.mean(r[0] for r in rows)
        seconds = statistics.mean(r[1] for r in rows)
        synced = statistics.mean(r[2] for r in rows)
        means[kind] = (calls, seconds)
        print(f"{label:<28}{calls:>12.1f}{seconds:>10.3f}{synced:>13.1f}")
        print(f"{'  per sweep':<28}{' '.join(str(r[0]) for r in rows):>12}")
    call_ratio = means["naive"][0] / means["list"][0]
    time_ratio = means["naive"][1] / means["list"][1]
    print(f"\nprovider calls: {call_ratio:.1f}x fewer; sweep time: {time_ratio:.1f}x faster")
    print(f"target >= 20x fewer calls: {'met' if call_ratio >= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
