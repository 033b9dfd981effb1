"""The fault drill's stack: ftq on Postgres and a private Redis, with faults to inject."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from ftq.shared.serving import free_port
from tests.e2e.stack import BIN, ROOT, Stack, base_env
from tests.services import drop_database, fresh_database, require_services

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
WORKER_SLOTS = ("worker-1", "worker-2")


def restartable_port() -> int:
    """A free port below Linux's ephemeral range (32768+), so that no outgoing connection takes
    it while its server is down and the restart can bind it again."""
    for _ in range(100):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port between 20000 and 32000")


def redis_server_or_skip() -> str:
    """The redis-server binary; the drill restarts its own Redis, so it needs one."""
    if Path(REDIS_SERVER).is_file():
        return REDIS_SERVER
    if require_services():
        pytest.fail("FTQ_REQUIRE_SERVICES=1 but redis-server is not installed")
    pytest.skip("redis-server is not installed")


@dataclass
class RedisServer:
    """A private redis-server configured as production runs it (AOF on, no eviction)."""

    workdir: Path
    port: int = field(default_factory=restartable_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """The broker URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on the same port and data folder as before, and wait for PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = (self.workdir / f"redis-{self.starts}.log").open("wb")
        args = [
            redis_server_or_skip(),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)),
            *("--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction"),
        ]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ping()

    def _wait_ping(self) -> None:
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits, as in a rolling restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@dataclass
class Arrival:
    """One webhook POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float

    @property
    def webhook_id(self) -> str:
        """The Standard Webhooks message id."""
        return self.headers.get("webhook-id", "")

    @property
    def event(self) -> dict[str, Any]:
        """The decoded body."""
        return dict(json.loads(self.body))

    @property
    def delay(self) -> float:
        """Seconds from the event's creation to this arrival."""
        created = datetime.fromisoformat(self.event["timestamp"]).timestamp()
        return self.at - created


@dataclass
class DrillReceiver:
    """A webhook receiver on a fixed port that can go down and come back."""

    port: int = field(default_factory=restartable_port)
    secrets: dict[str, str] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        """The URL of one destination; each path is verified with its own secret."""
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        """Listen (again) on the fixed port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening: senders get connection refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def record(self, path: str, headers: dict[str, str], body: bytes) -> None:
        """Keep one arrival, verified with the standardwebhooks package and its path's secret."""
        secret = self.secrets.get(path)
        verified = secret is not None and _verifies(secret, headers, body)
        with self.lock:
            self.arrivals.append(Arrival(path, headers, body, verified, time.time()))

    def snapshot(self) -> list[Arrival]:
        """The arrivals so far."""
        with self.lock:
            return list(self.arrivals)


def _verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except Exception:
        return False
    return True


class DrillStack(Stack):
    """API (uvicorn), two Celery workers, beat and the emulator on Postgres and a private Redis."""

    def __init__(self, workdir: Path, redis_server: RedisServer, extra_env: dict[str, str]):
        super().__init__(workdir)
        self.redis = redis_server
        self.extra_env = extra_env
        self.env: dict[str, str] = {}
        self.emulator_root = ""
        self.generations = dict.fromkeys(WORKER_SLOTS, 0)
        self.crashes: list[str] = []

    def start(self, emulator_speed: float) -> None:
        """Migrate a fresh database and start every process."""
        database_url = fresh_database("ftq_drill")
        if os.environ.get("FTQ_DRILL_KEEP_DATABASE") == "1":  # for a post-mortem
            print(f"drill database kept: {database_url}")
        else:
            self.cleanups.callback(drop_database, database_url)
        emulator_port, api_port = free_port(), free_port()
        self.emulator_root = f"http://127.0.0.1:{emulator_port}"
        self.url = f"http://127.0.0.1:{api_port}"
        self.env = base_env(
            self.workdir / "data",
            FTQ_DATABASE_URL=database_url,
            FTQ_BROKER_URL=self.redis.url,
            FTQ_EMULATOR_URL=f"{self.emulator_root}/v1",
            FTQ_PUBLIC_URL=self.url,
            **self.extra_env,
        )
        subprocess.run(
            [str(BIN / "ftq"), "migrate"], cwd=ROOT, env=self.env, check=True, capture_output=True
        )
        emulator = ["-m", "ftq.services.emulator", "--port", str(emulator_port)]
        self.spawn("emulator", [str(BIN / "python"), *emulator, "--speed", str(emulator_speed)])
        api = ["ftq.services.api.main:app", "--port", str(api_port), "--workers", "2"]
        self.spawn("api", [str(BIN / "uvicorn"), *api, "--log-level", "warning"])
        for slot in WORKER_SLOTS:
            self.start_worker(slot)
        beat = ["beat", "-s", str(self.workdir / "beat-schedule"), "-l", "WARNING"]
        self.spawn("beat", [*self._celery(), *beat])
        self.wait_http(f"{self.emulator_root}/v1/files")
        self.wait_http(f"{self.url}/readyz")

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Any:
        """Start a process with the drill's environment."""
        return super().spawn(name, args, env or self.env)

    def _celery(self) -> list[str]:
        return [str(BIN / "celery"), "-A", "ftq.services.worker.celery_app"]

    def start_worker(self, slot: str) -> None:
        """A worker on every queue; each generation logs to its own file."""
        self.generations[slot] += 1
        worker = [
            *("worker", "-Q", "validate,provider,webhooks,evals", "-P", "threads", "-c", "4"),
            *("-n", f"{slot}@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"),
        ]
        self.spawn(f"{slot}.{self.generations[slot]}", [*self._celery(), *worker])

    def kill_worker(self, slot: str) -> None:
        """SIGKILL the worker in a slot (no warm shutdown, nothing acknowledged) and restart it."""
        name = f"{slot}.{self.generations[slot]}"
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.start_worker(slot)

    def check_alive(self) -> None:
        """Restart a worker that died on its own, as compose and Kubernetes do; fail on others."""
        for slot in WORKER_SLOTS:
            name = f"{slot}.{self.generations[slot]}"
            process = self.processes[name]
            if process.poll() is not None:
                self.crashes.append(f"{name} exited with {process.returncode}")
                del self.processes[name]
                self.start_worker(slot)
        self._check_alive()

    def emulator(self) -> httpx.Client:
        """A client for the emulator's OpenAI-style API and its controls."""
        return httpx.Client(base_url=self.emulator_root, timeout=30, trust_env=False)
