"""bench/api.py keeps working: a tiny run prints every route at every level with its ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services import postgres_url_or_skip

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_benchmark_runs_and_reports_ratios_to_the_ceiling() -> None:
    postgres_url_or_skip()
    command = [sys.executable, str(ROOT / "bench" / "api.py"), "--levels", "1,3"]
    command += ["--seconds", "0.3", "--rounds", "1", "--teams", "3", "--workers", "1"]
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
