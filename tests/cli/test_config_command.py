"""`ftq config`: resolved settings, secrets masked, and checks of database, broker, providers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from ftq.services.emulator.app import create_app as create_emulator
from ftq.services.emulator.testing import serve_in_thread
from ftq.shared.serving import free_port

CLI = [sys.executable, "-m", "ftq.services.cli.main", "config"]
ADMIN_TOKEN = "admin-token-known-5f1c9a"
OPENAI_KEY = "sk-known-openai-key-77e3b1"
BROKER_PASSWORD = "broker-pw-known-0a9d"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)  # conftest's FTQ_DATABASE_URL (the test database) and friends
    full.update(env)
    return subprocess.run(
        [*CLI, *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def _checks(body: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in body["checks"]}


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    root, stop = serve_in_thread(create_emulator(speed=1e-9))
    yield f"{root}/v1"
    stop()


def test_json_masks_secrets_and_reports_a_closed_broker() -> None:
    closed = free_port()
    result = _run(
        "--json",
        FTQ_ADMIN_TOKEN=ADMIN_TOKEN,
        FTQ_SECRET_KEY="secret-key-known-c0ffee",
        OPENAI_API_KEY=OPENAI_KEY,
        FTQ_OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",  # openai: configured, closed
        FTQ_BROKER_URL=f"redis://:{BROKER_PASSWORD}@127.0.0.1:{closed}/0",
    )
    output = result.stdout + result.stderr
    for secret in (ADMIN_TOKEN, "secret-key-known-c0ffee", OPENAI_KEY, BROKER_PASSWORD):
        assert secret not in output
    assert result.returncode == 1, output
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert body["settings"]["FTQ_ADMIN_TOKEN"] == "********"
    assert body["settings"]["FTQ_SECRET_KEY"] == "********"
    assert body["settings"]["FTQ_METRICS_TOKEN"] == "(unset)"
    assert body["settings"]["FTQ_BROKER_URL"] == f"redis://:********@127.0.0.1:{closed}/0"
    assert body["derived"]["env OPENAI_API_KEY"] == "********"
    assert "openai" in body["derived"]["configured_providers"]
    assert body["derived"]["runs_embedded_worker"] is False
    checks = _checks(body)
    assert checks["database"]["status"] == "ok", checks["database"]
    assert checks["broker"]["status"] == "fail"
    assert checks["broker"]["detail"]
    assert checks["provider openai"]["status"] == "fail"
    assert checks["provider emulator"] == {
        "name": "provider emulator",
        "status": "skip",
        "detail": "served by the API process (not checked)",
    }
    assert all("\n" not in check["detail"] for check in body["checks"])


def test_every_check_passes(emulator_url: str) -> None:
    result = _run(
        "--json", FTQ_BROKER_URL="memory://", FTQ_EMULATOR_URL=emulator_url, FTQ_LOCAL_ENABLED="0"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    checks = _checks(body)
    assert body["ok"] is True
    assert set(checks) == {"database", "broker", "provider emulator"}
    assert checks["broker"]["status"] == "ok"
    assert "in-process" in checks["broker"]["detail"]
    assert checks["provider emulator"]["status"] == "ok", checks["provider emulator"]


def test_table_and_no_check() -> None:
    result = _run(
        "--no-check",
        FTQ_ADMIN_TOKEN=ADMIN_TOKEN,
        FTQ_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",  # not reached with --no-check
        COLUMNS="200",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ADMIN_TOKEN not in result.stdout
    assert "FTQ_ADMIN_TOKEN" in result.stdout
    assert "********" in result.stdout
    assert "resolved_database_url" in result.stdout
    assert "checks" not in result.stdout


def test_no_check_json_has_no_checks() -> None:
    result = _run("--json", "--no-check")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["checks"] == []
    assert body["ok"] is True


def test_bad_setting_exits_2() -> None:
    result = _run("--json", FTQ_PORT="eighty")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ftq: configuration error: FTQ_PORT: got 'eighty'; wants an integer"
    )
    assert "Traceback" not in result.stderr
