"""Fixtures of the end-to-end tests (a module may define its own `stack` instead)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, start_embedded


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """`ftq up` with SQLite, the memory broker and the emulator, in processes of their own."""
    running = start_embedded(tmp_path)
    try:
        yield running
    finally:
        running.stop()
