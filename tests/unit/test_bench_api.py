"""bench/api.py keeps working: a tiny run prints every route at every level with its ratio."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import postgres_url_or_skip

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_benchmark_runs_and_reports_ratios_to_the_ceiling() -> None:
    postgres_url_or_skip()
    command = [sys.executable, str(ROOT / "bench" / "api.py"), "--levels", "1,3"]
    command += ["--seconds", "0.3", "--rounds", "1", "--teams", "3", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line[:7].strip().isdigit()]
    seen = {(row[0], " ".join(row[1:3])) for row in rows}
    for level in ("1", "3"):
        for route in ("GET /bench/ceiling", "POST /v1/jobs", "GET /v1/jobs/{id}"):
            assert (level, route) in seen, result.stdout
    for row in rows:
        requests_per_second, ratio = float(row[3]), float(row[6])
        assert requests_per_second > 0 and ratio > 0
        if row[2] == "/bench/ceiling":
            assert ratio == 1.0
    for level in ("1", "3"):
        for route in ("POST /v1/jobs", "GET /v1/jobs/{id}"):
            line = next(
                x for x in result.stdout.splitlines() if x.startswith(f"ratio {route} @{level}: ")
            )
            assert float(line.split(": ")[1].split()[0]) > 0, line


def test_the_clients_are_spread_evenly_over_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import api

    # The kernel hands the first connections to worker 1 only, then alternates.
    pids = iter([1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2])
    opened: list[FakeConnection] = []

    class FakeConnection:
        def __init__(self) -> None:
            self.pid, self.closed = next(pids), False
            opened.append(self)

        @classmethod
        async def open(cls, port: int) -> FakeConnection:
            return cls()

        async def request(self, *_: object) -> tuple[int, bytes]:
            return 200, json.dumps({"pid": self.pid}).encode()

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(api, "Connection", FakeConnection)
    kept = asyncio.run(api.open_balanced(0, 8, 2))
    assert sorted(c.pid for c in kept) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert all(c.closed for c in opened if c not in kept), "the extra connections are closed"
    assert not any(c.closed for c in kept)
