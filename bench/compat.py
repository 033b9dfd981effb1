"""Benchmark the OpenAI-compatible surface against what it wraps, request by request.

    python bench/compat.py [--runs 300] [--warmup 30]

Needs PostgreSQL on 127.0.0.1:5432: a fresh database is created, migrated with `ftq migrate`
and dropped at the end. Two uvicorn processes run: the OpenAI emulator (a test double of OpenAI)
and the ftq API with `FTQ_PROVIDER=emulator` pointed at it. One client in this process sends one
request at a time over a keep-alive connection per server, alternating the two sides of each
comparison so drift hits both alike; the figures are medians of `--runs` requests:

- (a) `GET /v1/fine_tuning/jobs/{ftjob-X}` (compat) against `GET /v1/jobs/{ftj_X}` (native), the
  same job row: the ratio of their medians;
- (b) a non-streamed `POST /v1/chat/completions` through ftq against the emulator directly: the
  difference of the medians (what ftq's auth, routing and relay add);
- (c) the same with `stream: true`, up to the first content delta (time to first token).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftq.shared.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import bench_stack  # noqa: E402  (needs ROOT on sys.path)

MODEL = "gpt-4o-mini-2024-07-18"
MESSAGES = [{"role": "user", "content": "Write one short sentence about unit conversion."}]
FIRST_CONTENT = re.compile(rb'"delta":\{"content":"[^"]')


class Client:
    """One keep-alive HTTP/1.1 connection to a server."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"content-type": "application/json", **(headers or {})}

    def send(self, method: str, path: str, body: Any = None) -> http.client.HTTPResponse:
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.connection.request(method, path, body=data, headers=self.headers)
            return self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.connection.close()  # the server dropped an idle keep-alive connection: redial
            self.connection.request(method, path, body=data, headers=self.headers)
            return self.connection.getresponse()

    def timed(self, method: str, path: str, body: Any = None) -> float:
        """Seconds until the whole answer was read."""
        started = time.perf_counter()
        answer = self.send(method, path, body)
        content = answer.read()
        elapsed = time.perf_counter() - started
        if answer.status != 200:
            raise SystemExit(f"{method} {path}: {answer.status} {content[:300]!r}")
        return elapsed

    def first_token(self, path: str, body: Any) -> float:
        """Seconds until the first content delta of a stream arrived (then read to the end)."""
        started = time.perf_counter()
        answer = self.send("POST", path, body)
        seen, elapsed = b"", None
        while elapsed is None:
            piece = answer.read1(65536)
            if not piece:
                raise SystemExit(f"POST {path}: {answer.status}, no content delta in {seen!r}")
            seen += piece
            if FIRST_CONTENT.search(seen):
                elapsed = time.perf_counter() - started
        rest = answer.read()
        if answer.status != 200 or not (seen + rest).endswith(b"data: [DONE]\n\n"):
            raise SystemExit(f"POST {path}: {answer.status} {(seen + rest)[-300:]!r}")
        return elapsed


def paired(
    runs: int, warmup: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[float, float]:
    """Median seconds of each of two measurements, alternated request by request."""
    for _ in range(warmup):
        first(), second()
    a, b = [], []
    for turn in range(runs):
        if turn % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return statistics.median(a), statistics.median(b)


# --------------------------------------------------------------------------- set-up


def _team_with_job(env: dict[str, str], port: int, admin: str) -> tuple[str, str]:
    """(team key, native job id): a team, a dataset validated here, and one queued job."""
    os.environ.update(env)
    from ftq.shared import wiring
    from ftq.shared.datasets import service as datasets
    from ftq.shared.db import get_sessionmaker

    wiring.install()
    admin_client = Client(port, {"authorization": f"Bearer {admin}"})
    answer = admin_client.send("POST", "/v1/admin/teams", {"name": "bench-compat"})
    key = json.loads(answer.read())["api_key"]["key"]
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        for i in range(12)
    ]
    content = "".join(json.dumps(r) + "\n" for r in rows).encode()
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="t.jsonl"\r\n'
            f"content-type: application/jsonl\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST",
        "/v1/datasets",
        body=body,
        headers={
            "authorization": f"Bearer {key}",
            "content-type": f"multipart/form-data; boundary={boundary}",
        },
    )
    dataset = json.loads(connection.getresponse().read())
    with get_sessionmaker()() as session:
        datasets.run_validation(session, dataset["id"])
        session.commit()
    team = Client(port, {"authorization": f"Bearer {key}"})
    job = team.send("POST", "/v1/jobs", {"model": MODEL, "training_dataset": dataset["id"]})
    return key, json.loads(job.read())["id"]


def run(args: argparse.Namespace) -> dict[str, float]:
    emulator_port, ftq_port = free_port(), free_port()
    with bench_stack("compat", FTQ_EMULATOR_URL=f"http://127.0.0.1:{emulator_port}/v1") as stack:
        emulator = ["--factory", "ftq.services.emulator.app:create_app"]
        stack.serve(emulator, "emulator.log", emulator_port)
        stack.serve(["ftq.services.api.main:app"], "ftq.log", ftq_port)
        key, job_id = _team_with_job(stack.env, ftq_port, stack.admin)
        return measure(
            args, Client(ftq_port, {"authorization": f"Bearer {key}"}), emulator_port, job_id
        )


def measure(
    args: argparse.Namespace, ftq: Client, emulator_port: int, job_id: str
) -> dict[str, float]:
    """The three comparisons, in seconds."""
    direct = Client(emulator_port, {"authorization": "Bearer emulator"})
    compat_path = f"/v1/fine_tuning/jobs/ftjob-{job_id.removeprefix('ftj_')}"
    compat, native = paired(
        args.runs,
        args.warmup,
        lambda: ftq.timed("GET", compat_path),
        lambda: ftq.timed("GET", f"/v1/jobs/{job_id}"),
    )
    body = {"model": MODEL, "messages": MESSAGES}
    path = "/v1/chat/completions"
    proxied, straight = paired(
        args.runs,
        args.warmup,
        lambda: ftq.timed("POST", path, body),
        lambda: direct.timed("POST", path, body),
    )
    streamed = {**body, "stream": True}
    proxied_first, straight_first = paired(
        args.runs,
        args.warmup,
        lambda: ftq.first_token(path, streamed),
        lambda: direct.first_token(path, streamed),
    )
    return {
        "compat": compat,
        "native": native,
        "proxied": proxied,
        "direct": straight,
        "proxied_first": proxied_first,
        "direct_first": straight_first,
    }


def report(figures: dict[str, float], runs: int) -> None:
    ms = {k: 1000 * v for k, v in figures.items()}
    print(f"medians of {runs} requests each, one client, servers on this machine")
    print(
        f"compat jobs.retrieve p50: {ms['compat']:.2f} ms, "
        f"native GET /v1/jobs/{{id}}: {ms['native']:.2f} ms"
    )
    print(
        f"ratio compat jobs.retrieve / native GET /v1/jobs/{{id}}: "
        f"{figures['compat'] / figures['native']:.2f} [target <= 1.2]"
    )
    print(f"chat completion p50 through ftq: {ms['proxied']:.2f} ms, direct: {ms['direct']:.2f} ms")
    print(f"chat completion overhead p50: {ms['proxied'] - ms['direct']:.2f} ms [target <= 3 ms]")
    print(
        f"stream first token p50 through ftq: {ms['proxied_first']:.2f} ms, "
        f"direct: {ms['direct_first']:.2f} ms"
    )
    print(
        f"stream first-token overhead p50: {ms['proxied_first'] - ms['direct_first']:.2f} ms "
        "[target <= 5 ms]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="requests per side of a comparison")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured requests per side first")
    args = parser.parse_args()
    report(run(args), args.runs)


if __name__ == "__main__":
    main()
