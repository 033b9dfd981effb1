"""The default demo needs only the server extra: nothing on its path imports the torch stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.stack import ROOT, base_env

SCRIPT = """
import sys
from ftq.services.cli import main, progress
from ftq.services.cli.demo import runner
from ftq.services.api.main import create_app
from ftq.services.worker.celery_app import celery_app

create_app()
celery_app.loader.import_default_modules()  # every task module the embedded worker runs
heavy = {"torch", "transformers", "peft", "trl", "datasets", "accelerate"}
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


def test_the_emulator_demo_path_imports_no_torch(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
