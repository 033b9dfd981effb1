"""Streaming: byte ranges, long lines, bad bytes, flat memory and parallel workers."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import tracemalloc
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from ftq.shared.datasets.validation import parallel as parallel_module
from ftq.shared.datasets.validation import reader, validate_file

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}


def chat(i: int, text: str = "") -> dict[str, Any]:
    """A distinct valid example."""
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"question {i} {text}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    }


def write_lines(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path.write_bytes(b"\n".join(lines) + end)
    return path


def test_iter_lines_joins_lines_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "BLOCK", 7)
    rnd = random.Random(3)
    lines = [bytes(rnd.choice(b"abc ") for _ in range(rnd.randint(0, 40))) for _ in range(200)]
    data = b"\n".join(lines)
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    assert list(reader.iter_lines(path)) == data.split(b"\n")
    path.write_bytes(data + b"\n")
    assert list(reader.iter_lines(path)) == data.split(b"\n")


def test_ranges_start_at_line_starts_and_cover_the_file(tmp_path: Path) -> None:
    rnd = random.Random(5)
    lines = [b"x" * rnd.choice([0, 1, 10, 500, 5000]) for _ in range(300)]
    path = write_lines(tmp_path / "r.jsonl", lines, end=b"")
    data = path.read_bytes()
    for n in (1, 2, 7, 50, 10_000):
        ranges = reader.plan_ranges(path, n)
        assert ranges[0].start == 0 and ranges[-1].end == len(data)
        for before, after in pairwise(ranges):
            assert before.end == after.start
            assert data[after.start - 1 : after.start] == b"\n"
        pieces = [list(reader.iter_lines(path, r.start, r.end)) for r in ranges]
        assert [line for piece in pieces for line in piece] == data.split(b"\n")


def test_multi_megabyte_line_and_exact_line_numbers_after_it(tmp_path: Path) -> None:
    big = chat(0, "lorem ipsum " * 400_000)  # about 5 MB on one line
    lines = [json.dumps(big).encode()] + [json.dumps(chat(i)).encode() for i in range(1, 11)]
    lines.insert(6, b'{"messages": [}')
    report = validate_file(write_lines(tmp_path / "big.jsonl", lines))
    assert [(f.line, f.code) for f in report.errors.items] == [
        (1, "example_too_long"),
        (7, "invalid_json"),
    ]
    assert (report.tokens.total.max or 0) > 800_000
    assert report.n_lines == report.n_examples == 12


def test_bad_bytes_are_reported_not_fatal(tmp_path: Path) -> None:
    lines = [json.dumps(chat(i)).encode() for i in range(12)]
    lines[4] = b'{"messages": [{"role": "user", "content": "na\xefve \xff"}]}'
    lines[8] = b"\x00\x01\x02"
    report = validate_file(write_lines(tmp_path / "bytes.jsonl", lines))
    assert [(f.line, f.code) for f in report.errors.items] == [
        (5, "invalid_utf8"),
        (9, "invalid_json"),
    ]
    assert "byte 0xef at position 46 is not UTF-8" in report.errors.items[0].message
    assert report.tokens.total.count == 10


def test_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    lines = [json.dumps(chat(i)).encode() + b"\r" for i in range(10)]
    path = write_lines(tmp_path / "crlf.jsonl", lines, end=b"")
    report = validate_file(path)
    assert report.ok, report.errors
    assert report.n_lines == 10


def test_pretty_printed_json_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "pretty.jsonl"
    path.write_text(json.dumps(GOOD, indent=2))
    report = validate_file(path)
    assert report.errors.items[0].line == 1
    assert "pretty-printed" in report.errors.items[0].message


def _peak_while_validating(path: Path, n_lines: int) -> int:
    """Peak Python allocation while validating `n_lines` lines of 1 MB each."""
    with open(path, "wb") as f:
        for i in range(n_lines):
            f.write(json.dumps({"messages": i, "pad": f"{i}" + "x" * 1_000_000}).encode() + b"\n")
    validate_file(path, workers=1)  # warm caches: the encoding is not part of the stream
    tracemalloc.start()
    try:
        report = validate_file(path, workers=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.errors.by_code == {"missing_messages_list": n_lines}
    return peak


def test_memory_stays_flat_while_streaming(tmp_path: Path) -> None:
    # Peak memory follows the longest line (orjson's parse needs ~13x it), not the file size.
    small = _peak_while_validating(tmp_path / "small.jsonl", 10)
    large = _peak_while_validating(tmp_path / "large.jsonl", 60)
    assert large < small * 1.2, (small, large)
    assert large < 40_000_000


def _mixed_file(tmp_path: Path) -> Path:
    """A few thousand examples with problems at known lines, and cross-file duplicates."""
    lines = [json.dumps(chat(i, "text " * (i % 50))).encode() for i in range(3000)]
    lines[0] = json.dumps(GOOD).encode()
    lines[2999] = lines[0]
    lines[1500] = b"not json"
    lines[2000] = json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode()
    lines[2500] = b""
    return write_lines(tmp_path / "mixed.jsonl", lines)


@pytest.fixture
def many_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make even small files split into many ranges handled by worker processes."""
    monkeypatch.setattr(parallel_module, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(parallel_module, "MIN_RANGE", 16 << 10)


def _expect_mixed(report: Any) -> None:
    errors = [(f.line, f.code) for f in report.errors.items]
    assert errors == [
        (1501, "invalid_json"),
        (2001, "unrecognized_role"),
        (2001, "example_missing_assistant_message"),
    ]
    dups = [(f.line, f.message) for f in report.warnings.items if f.code == "duplicate_example"]
    assert dups == [(3000, "this example repeats line 1 exactly")]
    assert report.n_lines == 3000 and report.n_examples == 2999


def test_worker_processes_give_exact_line_numbers(tmp_path: Path, many_ranges: None) -> None:
    path = _mixed_file(tmp_path)
    assert len(parallel_module.plan(path, path.stat().st_size, 2)) > 5
    parallel = validate_file(path, workers=2)
    _expect_mixed(parallel)
    serial = validate_file(path, workers=1)
    assert parallel.model_dump(exclude={"elapsed_seconds"}) == serial.model_dump(
        exclude={"elapsed_seconds"}
    )


def test_threaded_host_spawns_workers(tmp_path: Path, many_ranges: None) -> None:
    path = _mixed_file(tmp_path)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        report = validate_file(path, workers=2)
    finally:
        stop.set()
        other.join()
    _expect_mixed(report)


def _validate_in_daemon(path: Path, queue: Any) -> None:
    report = validate_file(path, workers=2)
    queue.put([(f.line, f.code) for f in report.errors.items])


def test_daemon_processes_validate_in_process(tmp_path: Path, many_ranges: None) -> None:
    path = _mixed_file(tmp_path)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    daemon = context.Process(target=_validate_in_daemon, args=(path, queue), daemon=True)
    daemon.start()
    errors = queue.get(timeout=60)
    daemon.join(timeout=10)
    assert daemon.exitcode == 0
    assert errors == [
        (1501, "invalid_json"),
        (2001, "unrecognized_role"),
        (2001, "example_missing_assistant_message"),
    ]


def test_small_files_stay_in_process(tmp_path: Path) -> None:
    path = _mixed_file(tmp_path)
    assert len(parallel_module.plan(path, path.stat().st_size, 8)) == 1
