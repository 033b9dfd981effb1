"""The distribution: one top-level package `ftq`, the light client by default, the server extra."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = {"fastapi", "uvicorn", "sqlalchemy", "psycopg", "alembic", "celery", "openai"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-q", "-w", str(out), str(ROOT)], check=True, timeout=300)
    (built,) = out.glob("ftq-*.whl")
    return zipfile.ZipFile(built)


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return email.message_from_bytes(wheel.read(name))


def test_the_wheel_installs_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ftq"}
    names = set(wheel.namelist())
    for expected in (
        "ftq/shared/jobs/service.py",
        "ftq/services/api/main.py",
        "ftq/services/cli/main.py",
        "ftq/migrations/env.py",
        "ftq/migrations/script.py.mako",
        "ftq/services/cli/demo/unit_conversions.jsonl",
        "ftq/services/api/routers/dashboard.html",
    ):
        assert expected in names, expected
    versions = [n for n in names if n.startswith("ftq/migrations/versions/2") and n.endswith(".py")]
    assert len(versions) == len(list((ROOT / "migrations" / "versions").glob("2*.py")))


def test_every_package_folder_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in ("shared", "services", "migrations"):
        for init in (ROOT / folder).rglob("__init__.py"):
            assert f"ftq/{init.relative_to(ROOT).as_posix()}" in names, init


def test_the_default_install_is_the_light_client(wheel: zipfile.ZipFile) -> None:
    requires = [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist") or []]
    base = {r.name.lower() for r in requires if r.marker is None}
    server = {
        r.name.lower() for r in requires if r.marker and r.marker.evaluate({"extra": "server"})
    }
    assert not base & SERVER_ONLY, base & SERVER_ONLY
    assert {"httpx", "typer", "rich", "tiktoken"} <= base
    assert server >= SERVER_ONLY


def test_the_console_script_points_into_ftq(wheel: zipfile.ZipFile) -> None:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    scripts = wheel.read(name).decode()
    assert "ftq = ftq.services.cli.main:" in scripts
