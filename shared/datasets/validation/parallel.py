"""Running range checks on every core; small files stay in-process."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ftq.shared.datasets.tokens import get_encoding
from ftq.shared.datasets.validation.lines import RangeConfig, RangeResult, validate_range
from ftq.shared.datasets.validation.reader import ByteRange, plan_ranges

IN_PROCESS_BELOW = 4 << 20
RANGES_PER_WORKER = 48
MIN_RANGE, MAX_RANGE = 1 << 20, 8 << 20


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def plan(path: Path, size: int, workers: int) -> list[ByteRange]:
    """Line-aligned ranges: one for small files, else a few per worker so all finish together."""
    if size == 0:
        return []
    if workers <= 1 or size < IN_PROCESS_BELOW:
        return [ByteRange(0, 0, size)]
    range_size = min(MAX_RANGE, max(MIN_RANGE, size // (workers * RANGES_PER_WORKER)))
    return plan_ranges(path, -(-size // range_size))


def run_ranges(config: RangeConfig, ranges: list[ByteRange], workers: int) -> Iterator[RangeResult]:
    """Results of every range, in file order."""
    # Daemonic processes (Celery's prefork pool) may not start children: work in-process there.
    if workers <= 1 or len(ranges) <= 1 or multiprocessing.current_process().daemon:
        for rng in ranges:
            yield validate_range(config, rng)
        return
    with _pool(config.encoding, min(workers, len(ranges))) as pool:
        futures = [pool.submit(validate_range, config, rng) for rng in ranges]
        for future in futures:
            yield future.result()


def _pool(encoding: str, workers: int) -> ProcessPoolExecutor:
    """Worker processes that already hold the encoding."""
    # Forking shares the parent's loaded vocabulary for free, but forking a process that runs
    # other threads can deadlock them, so threaded hosts (API, worker pools) spawn instead.
    method = "fork" if threading.active_count() == 1 else "spawn"
    if method == "fork":
        get_encoding(encoding)
    context = multiprocessing.get_context(method)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(encoding,)
    )


def _start_worker(encoding: str) -> None:
    """Load the encoding and calm the garbage collector."""
    get_encoding(encoding)
    # Parsed lines make many short-lived containers but no cycles: freezing what the worker
    # inherited and collecting rarely saves a few percent of CPU.
    gc.freeze()
    gc.set_threshold(50_000, 50, 50)
