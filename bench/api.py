"""Benchmark the API: `POST /v1/jobs` and `GET /v1/jobs/{id}` against a trivial endpoint.

    python bench/api.py [--levels 1,4,16,64] [--seconds 3] [--rounds 3] [--workers 2]

Needs PostgreSQL on 127.0.0.1:5432: a fresh database is created, migrated with `ftq migrate`
and dropped at the end. One uvicorn server (`--workers` processes) serves the ftq app with one
extra route, `GET /bench/ceiling`, a trivial FastAPI endpoint returning a constant: same
process, same middleware (request ids, access log, metrics), no database. It is the ceiling the
ftq routes are measured against, in the same run.

No Celery worker runs and the broker is kombu's in-process `memory://` transport, so jobs stay
`queued`: a request pays for validation, quota and budget checks, the queue position, the
job row and its outbox row in one transaction, and the relay's hand-off to the broker, but not a
Redis round trip (`--broker redis://...` measures that too). `--teams` (64) teams share the
load round-robin; between measurements every job is marked cancelled in SQL, so no team reaches
its `max_active_jobs` and the active-job count stays small, as in a steady state.

The load comes from this process: one asyncio keep-alive HTTP/1.1 connection per concurrent
client, each sending its next request when the previous answer arrived (closed loop). The
connections are spread evenly over the worker processes (`GET /bench/worker` names the one
serving a connection); left to the kernel, a burst of connections may mostly go to one worker.
Per level and route: requests/s over `--seconds`, p50 and p99 latency, the ratio to the ceiling's
requests/s at the same level, and the CPU milliseconds per request spent by the server's processes
and by Postgres's (from /proc: the whole machine's Postgres, so keep it otherwise idle); medians
over `--rounds`. Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from ftq.shared.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import BenchStack, bench_stack  # noqa: E402  (needs ROOT on sys.path)

MODEL = "gpt-4o-mini-2024-07-18"
ROUTES = ("ceiling", "create", "read")


def create_bench_app() -> Any:
    """The ftq app plus the ceiling route (a uvicorn `--factory`)."""
    from ftq.services.api.main import create_app

    app = create_app()

    @app.get("/bench/ceiling", include_in_schema=False)
    def ceiling() -> dict[str, bool]:
        """A constant: what the server, framework and middleware cost alone."""
        return {"ok": True}

    @app.get("/bench/worker", include_in_schema=False)
    async def worker() -> dict[str, int]:
        """Which worker process serves this connection (to spread the clients evenly)."""
        return {"pid": os.getpid()}

    return app


# --------------------------------------------------------------------------- load generator


class Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads its answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class Load:
    """The requests of one route: what to send, and what a correct answer is."""

    def __init__(self, keys: list[str], datasets: list[str], job_ids: list[str]) -> None:
        self.keys, self.datasets, self.job_ids = keys, datasets, job_ids
        self.turn = 0
        self.created: list[str] = []

    def next(self, route: str) -> tuple[str, str, dict[str, str], bytes, int]:
        """(method, path, headers, body, expected status) of the next request of a route."""
        self.turn += 1
        team = self.turn % len(self.keys)
        headers = {"authorization": f"Bearer {self.keys[team]}"}
        if route == "ceiling":
            return "GET", "/bench/ceiling", {}, b"", 200
        if route == "create":
            body = json.dumps({"model": MODEL, "training_dataset": self.datasets[team]}).encode()
            headers["content-type"] = "application/json"
            return "POST", "/v1/jobs", headers, body, 201
        job_team, job_id = self.job_ids[self.turn % len(self.job_ids)].split(" ")
        headers = {"authorization": f"Bearer {self.keys[int(job_team)]}"}
        return "GET", f"/v1/jobs/{job_id}", headers, b"", 200


async def _client(
    connection: Connection,
    load: Load,
    route: str,
    stop: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    while time.perf_counter() < stop:
        method, path, headers, body, expected = load.next(route)
        started = time.perf_counter()
        status, answer = await connection.request(method, path, headers, body)
        latencies.append(time.perf_counter() - started)
        if status != expected:
            errors.append(f"{method} {path}: {status} {answer[:200]!r}")


async def open_balanced(port: int, clients: int, workers: int) -> list[Connection]:
    """`clients` keep-alive connections spread evenly over the server's worker processes.

    uvicorn's workers share one listening socket and the kernel may hand most of a burst of
    connections to one process; a level measured that way measures one worker, not the server
    (seen here: the ceiling at 16 clients at 1,750 req/s in one run and 4,000 in the next).
    """
    share = -(-clients // workers)
    by_worker: Counter[int] = Counter()
    kept: list[Connection] = []
    for _ in range(clients * 20):
        connection = await Connection.open(port)
        _, answer = await connection.request("GET", "/bench/worker", {})
        pid = json.loads(answer)["pid"]
        if by_worker[pid] >= share:
            connection.close()
            continue
        by_worker[pid] += 1
        kept.append(connection)
        if len(kept) == clients:
            return kept
    for connection in kept:
        connection.close()
    raise SystemExit(f"could not spread {clients} connections over {workers} workers")


async def measure(
    port: int, load: Load, route: str, clients: int, seconds: float, workers: int = 1
) -> dict:
    """Closed-loop load from `clients` connections for `seconds` (after a short warm-up)."""
    connections = await open_balanced(port, clients, workers)
    try:
        return await _measure_on(connections, load, route, seconds)
    finally:
        for connection in connections:
            connection.close()


async def _measure_on(
    connections: list[Connection], load: Load, route: str, seconds: float
) -> dict:
    warm: list[float] = []
    warm_errors: list[str] = []
    stop = time.perf_counter() + 0.3
    await asyncio.gather(*(_client(c, load, route, stop, warm, warm_errors) for c in connections))
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(*(_client(c, load, route, stop, latencies, errors) for c in connections))
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{route}: {len(errors)} bad answers, first: {errors[0]}")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "requests": len(latencies),
    }


# --------------------------------------------------------------------------- set-up


def _http(port: int, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"content-type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _ready_datasets(
    env: dict[str, str], port: int, admin: str, teams: int
) -> tuple[list[str], list[str]]:
    """`teams` teams, each with a ready dataset (validated here, as the worker would)."""
    os.environ.update(env)
    from ftq.shared import wiring
    from ftq.shared.datasets import service as datasets
    from ftq.shared.db import get_sessionmaker

    wiring.install()

    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    keys, dataset_ids = [], []
    for i in range(teams):
        team = _http(
            port,
            "POST",
            "/v1/admin/teams",
            {"name": f"bench-{i}", "max_active_jobs": 1000},
            {"authorization": f"Bearer {admin}"},
        )
        key = team["api_key"]["key"]
        boundary = uuid.uuid4().hex
        body = (
            (
                f"--{boundary}\r\n"
                'content-disposition: form-data; name="file"; filename="t.jsonl"\r\n'
                "content-type: application/jsonl\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/datasets",
            data=body,
            method="POST",
            headers={
                "authorization": f"Bearer {key}",
                "content-type": f"multipart/form-data; boundary={boundary}",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            dataset = json.loads(answer.read())
        with get_sessionmaker()() as session:
            datasets.run_validation(session, dataset["id"])
            session.commit()
        keys.append(key)
        dataset_ids.append(dataset["id"])
    return keys, dataset_ids


def _finish_all_jobs(database_url: str) -> None:
    """Mark every job cancelled, as if they had run: quotas and active counts stay small."""
    import psycopg

    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE status = 'queued'")


def _job_ids(database_url: str, team_ids: list[str]) -> list[str]:
    import psycopg

    index = {team: i for i, team in enumerate(team_ids)}
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT team_id, id FROM jobs ORDER BY id LIMIT 5000").fetchall()
    return [f"{index[team]} {job}" for team, job in rows]


def run(args: argparse.Namespace) -> dict[str, Any]:
    # The emulator URL is never called (no worker runs): set so the API mounts no emulator.
    with bench_stack(
        "api", FTQ_BROKER_URL=args.broker, FTQ_EMULATOR_URL="http://127.0.0.1:9/v1"
    ) as stack:
        port = free_port()
        app = ["--factory", "--app-dir", str(ROOT / "bench"), "api:create_bench_app"]
        server = stack.serve([*app, "--workers", str(args.workers)], "uvicorn.log", port)
        return _measure_all(args, stack, port, server.pid)


# --------------------------------------------------------------------------- CPU accounting


def _cpu_by_process(server_pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each of the server's processes ("api") and Postgres's."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:  # the process ended
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        pid = int(entry.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    groups: dict[int, tuple[str, float]] = {}
    for pid, (name, seconds) in used.items():
        if _descends_from(pid, server_pid, parents):
            groups[pid] = ("api", seconds)
        elif name.startswith("postgres"):
            groups[pid] = ("postgres", seconds)
    return groups


def _cpu_between(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    # Per process: a Postgres backend that ended in between is lost (a slight undercount).
    totals = {"api": 0.0, "postgres": 0.0}
    for pid, (group, seconds) in after.items():
        totals[group] += seconds - before.get(pid, (group, 0.0))[1]
    return totals


def _descends_from(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = parents.get(pid, 0)
    return False


def measure_with_cpu(
    port: int, load: Load, route: str, clients: int, seconds: float, server_pid: int, workers: int
) -> dict[str, Any]:
    """`measure`, plus the CPU milliseconds per request of the server and of Postgres."""
    before = _cpu_by_process(server_pid)
    figures = asyncio.run(measure(port, load, route, clients, seconds, workers))
    used = _cpu_between(before, _cpu_by_process(server_pid))
    for group in ("api", "postgres"):
        figures[f"{group}_cpu_ms"] = 1000 * used[group] / figures["requests"]
    return figures


def _measure_all(
    args: argparse.Namespace, stack: BenchStack, port: int, server_pid: int
) -> dict[str, Any]:
    keys, dataset_ids = _ready_datasets(stack.env, port, stack.admin, args.teams)
    team_ids = [
        _http(port, "GET", "/v1/team", None, {"authorization": f"Bearer {k}"})["id"] for k in keys
    ]
    seed = Load(keys, dataset_ids, ["0 none"])
    asyncio.run(measure(port, seed, "create", 8, 1.0, args.workers))
    job_ids = _job_ids(stack.database_url, team_ids)
    _finish_all_jobs(stack.database_url)
    results: dict[int, dict[str, list[dict]]] = {
        level: {route: [] for route in ROUTES} for level in args.levels
    }
    for round_no in range(args.rounds):
        for level in args.levels:
            for route in ROUTES:
                load = Load(keys, dataset_ids, job_ids)
                figures = measure_with_cpu(
                    port, load, route, level, args.seconds, server_pid, args.workers
                )
                results[level][route].append(figures)
                if route == "create":
                    _finish_all_jobs(stack.database_url)
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    return {"levels": results, "workers": args.workers, "cores": os.cpu_count()}


def report(outcome: dict[str, Any], rounds: int) -> None:
    print(
        f"uvicorn --workers {outcome['workers']} on {outcome['cores']} cores, "
        f"client in the same machine; medians of {rounds} rounds"
    )
    header = f"{'clients':>7}  {'route':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'/ceiling':>10}"
    header += f"{'api cpu ms':>12}{'pg cpu ms':>11}"
    print(header)
    names = {
        "ceiling": "GET /bench/ceiling",
        "create": "POST /v1/jobs",
        "read": "GET /v1/jobs/{id}",
    }
    for level, routes in outcome["levels"].items():
        ceiling = statistics.median(r["rps"] for r in routes["ceiling"])
        for route in ROUTES:
            runs = routes[route]
            rps = statistics.median(r["rps"] for r in runs)
            p50 = statistics.median(r["p50_ms"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            api_cpu = statistics.median(r["api_cpu_ms"] for r in runs)
            pg_cpu = statistics.median(r["postgres_cpu_ms"] for r in runs)
            print(
                f"{level:>7}  {names[route]:<22}{rps:>9.0f}{p50:>9.1f}{p99:>9.1f}"
                f"{rps / ceiling:>10.2f}{api_cpu:>12.2f}{pg_cpu:>11.2f}"
            )
    for level, routes in outcome["levels"].items():
        ceiling = statistics.median(r["rps"] for r in routes["ceiling"])
        for route, target in (("create", 0.15), ("read", 0.33)):
            rps = statistics.median(r["rps"] for r in routes[route])
            print(f"ratio {names[route]} @{level}: {rps / ceiling:.2f} [target >= {target}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,4,16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="per level and route")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--teams", type=int, default=64, help="teams sharing the load")
    parser.add_argument("--broker", default="memory://", help="e.g. redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    report(run(args), args.rounds)


if __name__ == "__main__":
    main()
