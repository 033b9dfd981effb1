"""Benchmark `POST /v1/datasets`: streaming a large JSONL file against `cp` of the same bytes.

    python bench/upload.py [--mb 200] [--rounds 3]

One uvicorn process serves the ftq app on the embedded database (SQLite; no worker, so no
validation competes for the cores), and a client in this process streams a `--mb` MB chat
JSONL file from disk as multipart (a fresh last line each round, so no upload is a
duplicate). The baseline, in the same run, is
`cp` of the same file into the same blob folder. Printed: medians of `--rounds`, the upload's
speed over cp's as `ratio upload/cp: X`, and the server's peak resident memory against the file
size (flat memory: the file is never held whole).

Each is timed twice per round: with the file in the page cache (read through just before: the
`ratio upload/cp` line), and with it dropped from the cache first (`posix_fadvise`), so both
read it from disk. Left to chance, the machine's memory reclaim decides which of the two a run
measures (seen here: `cp` at 0.06-0.09 s in some runs and 0.43-0.54 s in others).

Two floors, timed in this process on the same file: SHA-256 (the dataset's `sha256`, which the
upload must compute for dedupe and idempotency) and one parse of every line by the validator's
parser (orjson), the least the upload-time JSON lines check can do. Each is work the upload
cannot skip, so `cp` over each one bounds the ratio any upload could reach here, printed as
`bound upload/cp by ...: X`; the check itself (`ensure_json_lines`) is timed too.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from ftq.shared.serving import free_port

ADMIN = "bench-admin-token-0123456789abcdef"


def write_file(path: Path, megabytes: float) -> int:
    """A valid chat JSONL file of about `megabytes` MB; its size."""
    line = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "How many metres is one kilometre? " * 8},
                {"role": "assistant", "content": "One kilometre is 1000 metres. " * 8},
            ]
        }
    )
    count = int(megabytes * 1024 * 1024 / (len(line) + 1)) + 1
    with path.open("w") as out:
        for _ in range(count):
            out.write(line + "\n")
    return path.stat().st_size


def vary(path: Path, round_no: int) -> None:
    """Append a unique example so the next upload is not a duplicate of the last."""
    turns = [{"role": "user", "content": f"round {round_no}"}]
    row = {"messages": [*turns, {"role": "assistant", "content": "ok"}]}
    with path.open("a") as out:
        out.write(json.dumps(row) + "\n")


def timed_cp(source: Path, folder: Path) -> float:
    """Seconds to copy the file into the blob folder with cp (the copy is removed after)."""
    target = folder / "cp-baseline.jsonl"
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def cached(path: Path) -> None:
    """Read the file through, so the next reader finds it in the page cache."""
    with path.open("rb") as handle:
        while handle.read(1 << 24):
            pass


def uncached(path: Path) -> None:
    """Write the file out and drop it from the page cache, so the next reader reads the disk."""
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def timed_sha256(source: Path) -> float:
    """Seconds to hash the file as the blob store does (1 MiB reads into `hashlib.sha256`)."""
    from ftq.shared.storage import CHUNK

    digest = hashlib.sha256()
    started = time.perf_counter()
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return time.perf_counter() - started


def timed_parse(source: Path) -> float:
    """Seconds to parse every line with orjson, checking nothing else."""
    import orjson

    started = time.perf_counter()
    with source.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    return time.perf_counter() - started


def timed_line_check(source: Path) -> float:
    """Seconds of the upload-time JSON lines check on the file (the server's own function)."""
    from ftq.shared.datasets.jsonl import ensure_json_lines

    started = time.perf_counter()
    ensure_json_lines(source)
    return time.perf_counter() - started


def timed_upload(url: str, key: str, source: Path) -> float:
    """Seconds to upload the file as a dataset (multipart, streamed from disk; 200 or 201)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{source.name}"\r\nContent-Type: application/jsonl\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    started = time.perf_counter()
    connection.putrequest("POST", "/v1/datasets")
    connection.putheader("Authorization", f"Bearer {key}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + source.stat().st_size + len(tail)))
    connection.endheaders()
    connection.send(head)
    with source.open("rb") as body:
        while chunk := body.read(1024 * 1024):
            connection.send(chunk)
    connection.send(tail)
    answer = connection.getresponse()
    answer.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if answer.status not in (200, 201):
        raise SystemExit(f"upload answered {answer.status}")
    return elapsed


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The ftq API on the embedded database, no worker; (process, base URL)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTQ_")}
    env.update(
        {
            "FTQ_DATA_DIR": str(workdir / "data"),
            "FTQ_EMBEDDED_WORKER": "false",
            "FTQ_ADMIN_TOKEN": ADMIN,
            "FTQ_MAX_UPLOAD_BYTES": str(4 * 1024**3),
            "FTQ_LOG_LEVEL": "WARNING",
        }
    )
    command = [sys.executable, "-m", "uvicorn", "ftq.services.api.main:app", "--port", str(port)]
    log = (workdir / "api.log").open("wb")
    process = subprocess.Popen([*command, "--no-access-log"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2).read()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the API did not start:\n{(workdir / 'api.log').read_text()[-3000:]}")


def team_key(url: str) -> str:
    """A new team's key, through the admin API."""
    request = urllib.request.Request(
        f"{url}/v1/admin/teams",
        data=json.dumps({"name": "bench-upload"}).encode(),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(json.loads(answer.read())["api_key"]["key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200.0, help="file size in MB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ftq-bench-upload-"))
    try:
        source = workdir / "train.jsonl"
        size = write_file(source, args.mb)
        process, url = serve(workdir)
        try:
            key = team_key(url)
            blobs = workdir / "data" / "blobs"
            blobs.mkdir(parents=True, exist_ok=True)
            idle = peak_rss_mb(process.pid)
            cps, uploads, hashes, parses, checks = [], [], [], [], []
            cold_cps, cold_uploads = [], []
            for round_no in range(args.rounds):
                vary(source, 2 * round_no)
                cached(source)
                cps.append(timed_cp(source, blobs))
                cached(source)
                uploads.append(timed_upload(url, key, source))
                vary(source, 2 * round_no + 1)
                uncached(source)
                cold_cps.append(timed_cp(source, blobs))
                uncached(source)
                cold_uploads.append(timed_upload(url, key, source))
                cached(source)
                hashes.append(timed_sha256(source))
                parses.append(timed_parse(source))
                checks.append(timed_line_check(source))
            peak = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
        cp_s, upload_s = statistics.median(cps), statistics.median(uploads)
        megabytes = size / 1024 / 1024
        print(f"file {megabytes:.0f} MB; medians of {args.rounds} rounds")
        print(f"cp: {cp_s:.3f} s ({megabytes / cp_s:.0f} MB/s)")
        print(f"upload: {upload_s:.3f} s ({megabytes / upload_s:.0f} MB/s)")
        print(f"server peak RSS: {peak:.0f} MB (at start {idle:.0f} MB), files {megabytes:.0f} MB")
        print(f"ratio upload/cp: {cp_s / upload_s:.2f} [target >= 0.5]")
        cold_cp_s, cold_upload_s = statistics.median(cold_cps), statistics.median(cold_uploads)
        print(f"file read from disk: cp {cold_cp_s:.3f} s, upload {cold_upload_s:.3f} s")
        print(f"ratio upload/cp, file read from disk: {cold_cp_s / cold_upload_s:.2f}")
        hash_s, parse_s = statistics.median(hashes), statistics.median(parses)
        check_s = statistics.median(checks)
        print(f"floor sha256: {hash_s:.3f} s; floor parse of every line: {parse_s:.3f} s")
        print(f"upload-time line check (ensure_json_lines): {check_s:.3f} s")
        print(f"bound upload/cp by sha256 alone: {cp_s / hash_s:.2f}")
        print(f"bound upload/cp by parsing every line alone: {cp_s / parse_s:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
