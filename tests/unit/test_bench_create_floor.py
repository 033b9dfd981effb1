"""bench/create_floor.py keeps working: a tiny run replays a real create's statements and prints
their ratio to the ceiling, with and without the queue place."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.services import postgres_url_or_skip

ROOT = Path(__file__).resolve().parents[2]


def test_the_create_floor_benchmark_replays_a_create_and_reports_ratios() -> None:
    postgres_url_or_skip()
    command = [sys.executable, str(ROOT / "bench" / "create_floor.py"), "--levels", "2"]
    command += ["--seconds", "0.3", "--rounds", "1", "--teams", "2", "--workers", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for what in ("create SQL alone", "create SQL without queue place"):
        row = re.search(rf"^\s+2  {what}\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)$", result.stdout, re.M)
        assert row and int(row.group(1)) > 0 and float(row.group(2)) > 0, result.stdout
        ratio = re.search(rf"^ratio {what} @2: (\d+\.\d+) \[", result.stdout, re.M)
        assert ratio and float(ratio.group(1)) > 0, result.stdout
