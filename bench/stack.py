"""What the HTTP benches share: a fresh migrated Postgres database, ftq's settings, uvicorn.

`with bench_stack("api", FTQ_BROKER_URL=...) as stack:` creates the database, runs `ftq migrate`,
and on exit stops every server started with `stack.serve(...)` and drops the database.
"""

from __future__ import annotations

import http.client
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START_SECONDS = 120


@dataclass
class BenchStack:
    """A bench's database, working folder, admin token, environment and servers."""

    name: str
    database_url: str
    workdir: Path
    admin: str
    env: dict[str, str]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def serve(self, args: list[str], log_name: str, port: int) -> subprocess.Popen[bytes]:
        """`python -m uvicorn ARGS --port PORT`, returned once /healthz answers."""
        log = self.workdir / log_name
        command = [sys.executable, "-m", "uvicorn", *args, "--port", str(port), "--no-access-log"]
        server = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        self.servers.append(server)
        _wait_healthy(server, port, log)
        return server


def _wait_healthy(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"uvicorn exited:\n{log.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"uvicorn did not start:\n{log.read_text()[-3000:]}")


def _environment(database_url: str, workdir: Path, admin: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTQ_")}
    env.update(
        {
            "FTQ_ENVIRONMENT": "development",
            "FTQ_DATABASE_URL": database_url,
            "FTQ_BROKER_URL": "memory://",
            "FTQ_EMBEDDED_WORKER": "false",
            "FTQ_PROVIDER": "emulator",
            "FTQ_DATA_DIR": str(workdir / "data"),
            "FTQ_ADMIN_TOKEN": admin,
            "FTQ_SECRET_KEY": secrets.token_hex(24),
            "FTQ_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
            **extra,
        }
    )
    return env


def _stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for server in servers:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@contextmanager
def bench_stack(label: str, **env: str) -> Iterator[BenchStack]:
    """A migrated database `ftq_bench_<label>_<hex>` and ftq's settings for it (`env` on top)."""
    import psycopg

    name = f"ftq_bench_{label}_{uuid.uuid4().hex[:8]}"
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workdir = Path(tempfile.mkdtemp(prefix=f"ftq-bench-{label}-"))
    admin = secrets.token_hex(24)
    stack = BenchStack(
        name, database_url, workdir, admin, _environment(database_url, workdir, admin, **env)
    )
    try:
        ftq = str(Path(sys.executable).parent / "ftq")
        subprocess.run([ftq, "migrate"], cwd=ROOT, env=stack.env, check=True, capture_output=True)
        yield stack
    finally:
        _stop(stack.servers)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
