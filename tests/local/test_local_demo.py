"""`ftq demo --provider local` on SmolLM2: a short CPU run whose gain a person can see."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.stack import BIN, ROOT, base_env
from tests.local.helpers import require_local_stack, require_smollm2

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
MARGIN = 0.4


def test_the_local_demo_shows_the_tuned_model_beating_base(tmp_path: Path) -> None:
    require_local_stack()
    require_smollm2()
    folder = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "ftq"), "demo", "--provider", "local", "--data-dir", str(folder)],
        cwd=ROOT,
        env={**base_env(tmp_path), "FTQ_LOCAL_TORCH_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=1100,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo complete" in result.stdout
    outcome = json.loads((folder / "result.json").read_text())
    base, tuned = outcome["eval"]["results"]
    assert base["model"] == "smollm2-135m" and tuned["model"].startswith("local:smollm2-135m:")
    assert base["n"] == tuned["n"] == 20, "the held-out quarter of 80 tickets"
    print(f"\nlocal demo in {took:.0f} s: base {base['score']:.2f}, tuned {tuned['score']:.2f}")
    assert tuned["score"] - base["score"] >= MARGIN, (base, tuned)
    assert "held out of training" in result.stdout and "20 tickets" in result.stdout
