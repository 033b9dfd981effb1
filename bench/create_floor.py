"""The least `POST /v1/jobs` can cost here: its own SQL replayed alone, against the ceiling.

    python bench/create_floor.py [--levels 16,64] [--seconds 3] [--rounds 3] [--teams 64]

Needs PostgreSQL on 127.0.0.1:5432 (a fresh database from bench/stack.py). One real create runs
through the ftq app in this process with its statements recorded. They are then sent again from
`level` psycopg connections (one thread each, one transaction per create, the next of `--teams`
teams each time and a new job id): no HTTP, FastAPI, ORM, pydantic or JSON, only the database
driver. A second pass leaves out the statement that counts the new job's queue place. Between
measurements every job is cancelled, as bench/api.py does, so the queue grows the same way.

The ceiling is bench/api.py's: its trivial route on uvicorn (`--workers` processes), measured
in the same run by bench/api.py's own client. Printed per level, medians of `--rounds`: creates
per second, Postgres's CPU and this process's CPU per create (from /proc), and
`ratio create SQL alone @N: X`: no implementation that sends these statements can reach a
higher `ratio POST /v1/jobs @N` in bench/api.py on this machine, since there the API's own
work comes on top, on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import api  # noqa: E402  (needs ROOT on sys.path)
from bench.stack import BenchStack, bench_stack  # noqa: E402
from ftq.shared.serving import free_port  # noqa: E402

Statement = tuple[str, Any]
QUEUE_PLACE = "WITH me AS"


def record_one_create(
    stack: BenchStack, port: int, teams: int
) -> tuple[list[Statement], dict[str, Any]]:
    """The statements of one real create, and the ids to swap in each replay.

    The teams and their ready datasets are made through the server on `port`, as bench/api.py
    makes them; the recorded create runs through the app in this process.
    """
    for name in [n for n in os.environ if n.startswith("FTQ_")]:
        del os.environ[name]  # only the stack's settings: the caller's could change the create
    keys, dataset_ids = api._ready_datasets(stack.env, port, stack.admin, teams)
    team_ids = [
        api._http(port, "GET", "/v1/team", None, {"authorization": f"Bearer {k}"})["id"]
        for k in keys
    ]
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from ftq.services.api.main import create_app
    from ftq.shared.db import get_engine

    headers = {"authorization": f"Bearer {keys[0]}"}
    body = {"model": api.MODEL, "training_dataset": dataset_ids[0]}
    statements: list[Statement] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, copy.deepcopy(params)))

    with TestClient(create_app()) as client:
        for _ in range(6):  # past psycopg's prepare threshold, as a warm server is
            client.post("/v1/jobs", json=body, headers=headers).raise_for_status()
        event.listen(get_engine(), "before_cursor_execute", record)
        job = client.post("/v1/jobs", json=body, headers=headers)
        event.remove(get_engine(), "before_cursor_execute", record)
    job.raise_for_status()
    # Marking the last request's outbox rows dispatched runs on its own thread: not the create's.
    own = [s for s in statements if not s[0].lstrip().startswith("UPDATE outbox")]
    pairs = list(zip(team_ids, dataset_ids, strict=True))
    ids = {"job": job.json()["id"], "team": team_ids[0], "dataset": dataset_ids[0], "pairs": pairs}
    return own, ids


def _swap(value: Any, swaps: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in swaps.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _swap(v, swaps) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_swap(v, swaps) for v in value)
    return value


def replay(
    database_url: str, statements: list[Statement], ids: dict[str, Any], level: int, seconds: float
) -> dict[str, float]:
    """Creates per second from `level` connections sending the statements, and CPU per create."""
    import psycopg

    connections = [psycopg.connect(database_url) for _ in range(level)]
    done = [0] * level
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        turn = n
        while time.perf_counter() < stop:
            team_id, dataset_id = ids["pairs"][turn % len(ids["pairs"])]
            swaps = {
                ids["job"]: f"ftj_{uuid.uuid4().hex[:24]}",
                ids["team"]: team_id,
                ids["dataset"]: dataset_id,
            }
            for statement, params in statements:
                connections[n].execute(statement, _swap(params, swaps))
            connections[n].commit()
            done[n] += 1
            turn += level

    before = api._cpu_by_process(os.getpid())
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(level)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    used = api._cpu_between(before, api._cpu_by_process(os.getpid()))
    for connection in connections:
        connection.close()
    creates = sum(done)
    return {
        "rps": creates / elapsed,
        "postgres_cpu_ms": 1000 * used["postgres"] / creates,
        "driver_cpu_ms": 1000 * used["api"] / creates,
    }


def run(args: argparse.Namespace) -> dict[int, dict[str, list[dict[str, float]]]]:
    with bench_stack("floor", FTQ_EMULATOR_URL="http://127.0.0.1:9/v1") as stack:
        port = free_port()
        app = ["--factory", "--app-dir", str(ROOT / "bench"), "api:create_bench_app"]
        stack.serve([*app, "--workers", str(args.workers)], "uvicorn.log", port)
        statements, ids = record_one_create(stack, port, args.teams)
        without = [s for s in statements if not s[0].lstrip().startswith(QUEUE_PLACE)]
        if len(without) != len(statements) - 1:
            raise SystemExit("the create's queue-place statement was not found once")
        url = stack.database_url.replace("+psycopg", "")
        ceiling_load = api.Load(["unused"], [], [])  # the ceiling sends no key
        results: dict[int, dict[str, list[dict[str, float]]]] = {
            level: {"ceiling": [], "create": [], "create_no_place": []} for level in args.levels
        }
        for _ in range(args.rounds):
            for level in args.levels:
                figures = asyncio.run(
                    api.measure(port, ceiling_load, "ceiling", level, args.seconds, args.workers)
                )
                results[level]["ceiling"].append(figures)
                for name, sent in (("create", statements), ("create_no_place", without)):
                    results[level][name].append(replay(url, sent, ids, level, args.seconds))
                    api._finish_all_jobs(stack.database_url)
        return results


def report(results: dict[int, dict[str, list[dict[str, float]]]], rounds: int) -> None:
    print(f"the create's SQL alone, from psycopg threads; medians of {rounds} rounds")
    print(f"{'clients':>7}  {'what':<34}{'per s':>9}{'pg cpu ms':>11}{'driver cpu ms':>15}")
    names = {"create": "create SQL alone", "create_no_place": "create SQL without queue place"}
    for level, figures in results.items():
        ceiling = statistics.median(f["rps"] for f in figures["ceiling"])
        print(f"{level:>7}  {'GET /bench/ceiling (uvicorn)':<34}{ceiling:>9.0f}")
        for name, label in names.items():
            runs = figures[name]
            rps = statistics.median(r["rps"] for r in runs)
            pg = statistics.median(r["postgres_cpu_ms"] for r in runs)
            driver = statistics.median(r["driver_cpu_ms"] for r in runs)
            print(f"{level:>7}  {label:<34}{rps:>9.0f}{pg:>11.2f}{driver:>15.2f}")
    for level, figures in results.items():
        ceiling = statistics.median(f["rps"] for f in figures["ceiling"])
        for name, label in names.items():
            rps = statistics.median(r["rps"] for r in figures[name])
            print(f"ratio {label} @{level}: {rps / ceiling:.2f} [POST /v1/jobs target >= 0.15]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="per level and measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the ceiling")
    parser.add_argument("--teams", type=int, default=64, help="teams sharing the creates")
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    report(run(args), args.rounds)


if __name__ == "__main__":
    main()
