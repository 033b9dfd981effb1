"""The OpenAI SDK quickstart trains on the local provider (the tiny model) and asks its adapter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.quickstart import run_quickstart
from tests.local.helpers import build_tiny, require_local_stack, start_embedded_local

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_quickstart_runs_on_the_local_provider(tmp_path: Path) -> None:
    require_local_stack()
    tiny = build_tiny(tmp_path / "tiny")
    stack = start_embedded_local(tmp_path, tmp_path / "data", tiny)
    try:
        output = run_quickstart(stack, model="local:tiny", timeout=900)
    finally:
        stack.stop()
    assert re.search(r"created ftjob-\w+ on local:tiny", output)
    assert "status succeeded" in output
    assert re.search(r"step \d+: train loss \d", output), "the local trainer's metric events"
    assert re.search(r"the tuned model says: ", output)
