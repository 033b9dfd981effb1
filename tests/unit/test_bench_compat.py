"""bench/compat.py keeps working: a tiny run prints the three figures with their targets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.services import postgres_url_or_skip

ROOT = Path(__file__).resolve().parents[2]
LINES = (
    r"ratio compat jobs\.retrieve / native GET /v1/jobs/\{id\}: [\d.]+ \[target <= 1\.2\]",
    r"chat completion overhead p50: -?[\d.]+ ms \[target <= 3 ms\]",
    r"stream first-token overhead p50: -?[\d.]+ ms \[target <= 5 ms\]",
)


def test_the_compat_benchmark_runs_and_prints_its_three_figures() -> None:
    postgres_url_or_skip()
    command = [sys.executable, str(ROOT / "bench" / "compat.py"), "--runs", "5", "--warmup", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in LINES:
        assert re.search(line, result.stdout), result.stdout
