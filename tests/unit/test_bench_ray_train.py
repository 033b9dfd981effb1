"""bench/ray_train.py keeps working: a smoke run prints scaling, overhead and each run's rate."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local.helpers import require_local_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"(-?\d+(?:\.\d+)?)"


def test_the_ray_train_benchmark_prints_scaling_and_overhead_first(tmp_path: Path) -> None:
    require_local_stack()
    pytest.importorskip("ray")
    out = tmp_path / "ray_train.json"
    command = [sys.executable, str(ROOT / "bench" / "ray_train.py"), "--smoke", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=220, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    scaling = re.fullmatch(rf"scaling 2 workers / 1 worker: {NUMBER} \[>=1\.6\]", lines[0])
    overhead = re.fullmatch(rf"overhead vs plain TorchTrainer: {NUMBER}% \[<=5%\]", lines[1])
    assert scaling and overhead, result.stdout
    assert float(scaling.group(1)) > 0
    rates = {}
    for run in ("ftq, 1 worker", "ftq, 2 workers", "plain, 2 workers"):
        line = next(x for x in lines if x.startswith(run + " "))
        found = re.search(rf": {NUMBER} examples/s$", line)
        assert found, line
        rates[run] = float(found.group(1))
    assert all(rate > 0 for rate in rates.values()), rates
    saved = json.loads(out.read_text())
    assert saved["scaling"] == pytest.approx(float(scaling.group(1)), abs=0.01)
    assert saved["overhead_percent"] == pytest.approx(float(overhead.group(1)), abs=0.1)
    assert set(saved["examples_per_second"]) == {"ftq-1", "ftq-2", "plain-2"}
