"""Where the team's real test files live, and what to do when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """`FTQ_SHARED_DATA`, or `../shared/data` beside the repository."""
    configured = os.environ.get("FTQ_SHARED_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def require_shared_data() -> Path:
    """The data folder; skip when it is absent, unless `FTQ_REQUIRE_SERVICES=1` (then fail)."""
    folder = shared_data_dir()
    if folder.is_dir():
        return folder
    message = f"shared test data not found at {folder} (set FTQ_SHARED_DATA)"
    if os.environ.get("FTQ_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)
