"""Start real ftq processes for end-to-end tests: embedded `ftq up`, or API + Celery + emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from ftq.shared.serving import free_port
from tests.services import drop_database, fresh_database

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The parent's environment without any FTQ_* setting, plus fast-test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTQ_")}
    env.update(
        {
            "FTQ_DATA_DIR": str(data_dir),
            "FTQ_POLL_INTERVAL_SECONDS": "0.5",
            "FTQ_SWEEP_INTERVAL_SECONDS": "0.5",
            "FTQ_EMULATOR_SPEED": "300",
            "FTQ_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class Stack:
    """Processes of one test stack, with their logs."""

    workdir: Path
    url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cleanups: ExitStack = field(default_factory=ExitStack)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a process whose output goes to workdir/NAME.log."""
        log = (self.workdir / f"{name}.log").open("wb")
        self.cleanups.callback(log.close)
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        """Wait until a URL answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{url} did not come up; logs:\n{self.logs()}")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def logs(self) -> str:
        """The tail of every process log."""
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Terminate every process (SIGTERM, then SIGKILL)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.cleanups.close()


def start_embedded(workdir: Path) -> Stack:
    """`ftq up` with nothing configured but fast timings: SQLite, memory broker, emulator."""
    stack = Stack(workdir)
    port = free_port()
    env = base_env(workdir / "data", FTQ_PORT=str(port))
    stack.spawn("ftq-up", [str(BIN / "ftq"), "up", "--port", str(port)], env)
    stack.url = f"http://127.0.0.1:{port}"
    stack.wait_http(f"{stack.url}/readyz")
    return stack


def start_distributed(
    workdir: Path, redis_url: str, emulator_env: dict[str, str] | None = None
) -> Stack:
    """Postgres + Redis + a separate emulator, API (uvicorn), a Celery worker and beat."""
    stack = Stack(workdir)
    database_url = fresh_database("ftq_e2e")
    stack.cleanups.callback(drop_database, database_url)
    redis.Redis.from_url(redis_url).flushdb()
    emulator_port, api_port = free_port(), free_port()
    env = base_env(
        workdir / "data",
        FTQ_DATABASE_URL=database_url,
        FTQ_BROKER_URL=redis_url,
        FTQ_EMULATOR_URL=f"http://127.0.0.1:{emulator_port}/v1",
        FTQ_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
    )
    subprocess.run(
        [str(BIN / "ftq"), "migrate"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    stack.spawn(
        "emulator",
        [
            sys.executable,
            "-m",
            "ftq.services.emulator",
            "--port",
            str(emulator_port),
            "--speed=300",
        ],
        {**env, **(emulator_env or {})},
    )
    stack.spawn(
        "api",
        [str(BIN / "uvicorn"), "ftq.services.api.main:app", f"--port={api_port}", "--workers=2"],
        env,
    )
    celery = [str(BIN / "celery"), "-A", "ftq.services.worker.celery_app"]
    stack.spawn(
        "worker",
        [
            *celery,
            "worker",
            "-Q",
            "validate,provider,webhooks,evals",
            "-P",
            "threads",
            "-c",
            "4",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        env,
    )
    stack.spawn(
        "beat", [*celery, "beat", "-s", str(workdir / "beat-schedule"), "-l", "WARNING"], env
    )
    stack.url = f"http://127.0.0.1:{api_port}"
    stack.wait_http(f"http://127.0.0.1:{emulator_port}/v1/files", timeout=60)
    stack.wait_http(f"{stack.url}/readyz")
    return stack


def letter_questions(path: Path, n: int, offset: int = 0) -> Path:
    """`n` four-option questions in chat JSONL, each answered with one letter."""
    lines = []
    for i in range(offset, offset + n):
        options = "\n".join(f"{letter}. choice {letter.lower()}{i}" for letter in "ABCD")
        messages = [
            {"role": "system", "content": "Answer with one letter."},
            {"role": "user", "content": f"Question {i}: which is right?\n{options}"},
            {"role": "assistant", "content": "ABCD"[(i * 3) % 4]},
        ]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path
