"""Benchmark webhook delivery: ftq's full delivery path against a one-at-a-time baseline.

    python bench/webhooks.py [--events 5000] [--baseline-events 5000] [--rounds 3] [--threads 4]

Needs PostgreSQL on 127.0.0.1:5432 (a fresh database is created and dropped). A receiver in its
own process answers every POST after 20 ms, as a remote endpoint would, with keep-alive. Then,
in the same run and against the same receiver and database:
  (ftq)      `--events` events emitted for one endpoint, then delivered by ftq's worker code
             (`deliver_due` from `--threads` threads, as one Celery worker process with a thread
             pool runs it): claim a leased batch, sign, send concurrently on the pooled keep-alive
             dispatcher (10 at a time per endpoint), record every attempt and outcome in bulk.
  (baseline) the same work one delivery at a time: sign, POST on a new connection, record the
             attempt and the outcome with a commit each.
Deliveries/s = deliveries that succeeded over wall time; medians of `--rounds`.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """HTTP/1.1 with keep-alive: read a request, wait `delay`, answer 200, repeat."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(port: int, delay: float) -> None:
    """Run the receiver until killed."""

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _answer(r, w, delay), "127.0.0.1", port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _create_database() -> str:
    import psycopg

    name = f"ftq_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


class Bench:
    """One database, one team with one endpoint, the receiver."""

    def __init__(self, port: int) -> None:
        from ftq.shared.db import session_scope
        from ftq.shared.teams import service as teams
        from ftq.shared.teams.schemas import TeamCreate
        from ftq.shared.webhooks import service
        from ftq.shared.webhooks.schemas import WebhookEndpointCreate

        with session_scope() as session:
            created = teams.create_team(session, TeamCreate(name="bench"))
            team = teams.get_team(session, created.id)
            url = f"http://127.0.0.1:{port}/hook"
            _, secret = service.create_endpoint(session, team, WebhookEndpointCreate(url=url))
            self.team_id, self.secret, self.url = team.id, secret, url

    def emit(self, n: int) -> None:
        """Empty the log and emit `n` events (not timed)."""
        from sqlalchemy import text

        from ftq.shared.db import session_scope
        from ftq.shared.webhooks import service

        with session_scope() as session:
            session.execute(text("TRUNCATE webhook_attempts, webhook_deliveries, outbox"))
        with session_scope() as session:
            for i in range(n):
                data = {"id": f"ftj_{i:06d}", "status": "succeeded", "model": "gpt-4o-mini"}
                service.emit(session, self.team_id, "job.succeeded", data)

    def succeeded(self) -> int:
        """Deliveries that succeeded, with exactly one attempt logged each."""
        from sqlalchemy import text

        from ftq.shared.db import session_scope

        with session_scope() as session:
            ok = session.execute(
                text("SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'")
            ).scalar_one()
            attempts = session.execute(text("SELECT count(*) FROM webhook_attempts")).scalar_one()
        assert attempts == ok, f"{attempts} attempts for {ok} deliveries"
        return int(ok)

    def run_ftq(self, n: int, threads: int) -> float:
        """Deliveries/s of ftq's worker path."""
        from ftq.services.worker.tasks.webhooks import deliver_due

        self.emit(n)
        started = time.perf_counter()
        workers = [threading.Thread(target=deliver_due) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        return self._rate(n, elapsed)

    def run_baseline(self, n: int) -> float:
        """Deliveries/s of one-at-a-time delivery on a new connection each."""
        self.emit(n)
        rows = self._pending()
        started = time.perf_counter()
        for delivery_id, event_id, payload in rows:
            status, ms = _post_once(self.url, event_id, payload.encode(), self.secret)
            self._record_one(delivery_id, status, ms)
        return self._rate(n, time.perf_counter() - started)

    def _pending(self) -> list[Any]:
        from sqlalchemy import text

        from ftq.shared.db import session_scope

        with session_scope() as session:
            query = text("SELECT id, event_id, payload FROM webhook_deliveries ORDER BY id")
            return list(session.execute(query))

    @staticmethod
    def _record_one(delivery_id: str, status: int, ms: float) -> None:
        from ftq.shared.db import session_scope
        from ftq.shared.models import WebhookAttempt, WebhookDelivery
        from ftq.shared.timeutil import utcnow

        with session_scope() as session:
            session.add(WebhookAttempt(delivery_id=delivery_id, status_code=status, duration_ms=ms))
            delivery = session.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            delivery.attempts += 1
            delivery.last_status_code = status
            if 200 <= status < 300:
                delivery.status, delivery.delivered_at = "succeeded", utcnow()
                delivery.next_attempt_at = None

    def _rate(self, n: int, elapsed: float) -> float:
        done = self.succeeded()
        assert done == n, f"only {done} of {n} deliveries succeeded"
        return n / elapsed


def _post_once(url: str, event_id: str, body: bytes, secret: str) -> tuple[int, float]:
    """Sign and POST on a fresh connection, as a naive sender does."""
    from urllib.parse import urlsplit

    from ftq.shared.webhooks.signing import build_headers

    parts = urlsplit(url)
    started = time.perf_counter()
    headers = build_headers(event_id, int(time.time()), body, [secret])
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000
    finally:
        conn.close()


def _start_receiver(delay: float) -> tuple[subprocess.Popen[bytes], int]:
    from ftq.shared.serving import free_port

    port = free_port()
    args = [sys.executable, __file__, "--serve", str(port), "--delay", str(delay)]
    process = subprocess.Popen(args)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the receiver did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--baseline-events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.delay)
        return
    database_url = _create_database()
    os.environ.update(
        {
            "FTQ_DATABASE_URL": database_url,
            "FTQ_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
            "FTQ_ENVIRONMENT": "development",
        }
    )
    receiver, port = _start_receiver(args.delay)
    try:
        _run(args, database_url, port)
    finally:
        receiver.kill()
        from ftq.shared.db import reset_engine

        reset_engine()
        _drop_database(database_url)


def _run(args: argparse.Namespace, database_url: str, port: int) -> None:
    from ftq.shared.migrate import upgrade

    upgrade(database_url)
    bench = Bench(port)
    ftq, baseline = [], []
    for round_no in range(1, args.rounds + 1):
        ftq.append(bench.run_ftq(args.events, args.threads))
        baseline.append(bench.run_baseline(args.baseline_events))
        print(
            f"round {round_no}: ftq {ftq[-1]:.0f}/s ({args.events} events), "
            f"baseline {baseline[-1]:.0f}/s ({args.baseline_events} events)",
            flush=True,
        )
    ftq_median, base_median = statistics.median(ftq), statistics.median(baseline)
    print(f"receiver answers after {args.delay * 1000:.0f} ms; {args.threads} worker threads")
    print(f"ftq delivery path   median {ftq_median:7.0f} deliveries/s  (target >= 300)")
    print(f"baseline            median {base_median:7.0f} deliveries/s")
    print(f"ratio ftq/baseline  {ftq_median / base_median:.1f}x  (target >= 6x)")


if __name__ == "__main__":
    main()
