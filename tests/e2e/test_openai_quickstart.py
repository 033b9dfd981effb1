"""The OpenAI SDK quickstart runs unchanged on the embedded default (emulator provider)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.quickstart import run_quickstart
from tests.e2e.stack import start_embedded

pytestmark = pytest.mark.e2e


def test_the_quickstart_runs_on_the_embedded_default(tmp_path: Path) -> None:
    stack = start_embedded(tmp_path)
    try:
        output = run_quickstart(stack)
    finally:
        stack.stop()
    assert re.search(r"uploaded file-\w+ \(\d+ bytes\) and file-\w+", output)
    assert re.search(r"created ftjob-\w+ on gpt-4o-mini-2024-07-18", output)
    assert "status succeeded" in output
    assert re.search(r"fine-tuned model: ft:gpt-4o-mini-2024-07-18:", output)
    assert re.search(r"step \d+: train loss \d", output), "metric events were printed"
    assert "checkpoint ft:" in output
    assert re.search(r"the tuned model says: .+", output)
