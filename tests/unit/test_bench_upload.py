"""bench/upload.py keeps working: a small run prints the upload/cp ratio, the server's memory
and the bounds its two floors (SHA-256, parsing every line) set on that ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_upload_benchmark_prints_its_ratio_and_memory() -> None:
    command = [sys.executable, str(ROOT / "bench" / "upload.py"), "--mb", "4", "--rounds", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    ratio = re.search(r"^ratio upload/cp: (\d+\.\d+) \[target >= 0\.5\]$", result.stdout, re.M)
    assert ratio and float(ratio.group(1)) > 0, result.stdout
    memory = re.search(r"^server peak RSS: (\d+) MB \(at start (\d+) MB\)", result.stdout, re.M)
    assert memory, result.stdout
    disk_line = r"^ratio upload/cp, file read from disk: (\d+\.\d+)$"
    from_disk = re.search(disk_line, result.stdout, re.M)
    assert from_disk and float(from_disk.group(1)) > 0, result.stdout
    for floor in ("sha256 alone", "parsing every line alone"):
        bound = re.search(rf"^bound upload/cp by {floor}: (\d+\.\d+)$", result.stdout, re.M)
        assert bound and float(bound.group(1)) > 0, result.stdout
