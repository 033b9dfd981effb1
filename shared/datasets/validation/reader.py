"""Streaming binary line reading and splitting a file into line-aligned byte ranges."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20


@dataclass(frozen=True)
class ByteRange:
    """A slice of a file that starts at a line start and ends after a newline (or at EOF)."""

    index: int
    start: int
    end: int


def iter_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Yield each line (without its newline) of `path` in [start, end), reading in blocks."""
    stop = os.path.getsize(path) if end is None else end
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        yield from _split_blocks(f, stop - start)


def _split_blocks(f: BinaryIO, remaining: int) -> Iterator[bytes]:
    """Cut the next `remaining` bytes of `f` into lines; long lines span several blocks."""
    read = f.read
    carry: list[bytes] = []
    while remaining > 0:
        block = read(min(BLOCK, remaining))
        if not block:
            break
        remaining -= len(block)
        if b"\n" not in block:
            carry.append(block)
            continue
        lines = block.split(b"\n")
        if carry:
            carry.append(lines[0])
            lines[0] = b"".join(carry)
            carry = []
        tail = lines.pop()
        yield from lines
        if tail:
            carry.append(tail)
    if carry:
        yield b"".join(carry)


def plan_ranges(path: Path, n_ranges: int) -> list[ByteRange]:
    """Split `path` into about `n_ranges` ranges whose edges fall just after a newline."""
    size = os.path.getsize(path)
    if size == 0:
        return []
    step = max(1, -(-size // max(1, n_ranges)))
    edges = [0]
    with open(path, "rb") as f:
        while edges[-1] < size:
            edges.append(_next_line_start(f, edges[-1] + step, size))
    return [ByteRange(i, a, b) for i, (a, b) in enumerate(pairwise(edges))]


def _next_line_start(f: BinaryIO, offset: int, size: int) -> int:
    """The first line start at or after `offset` (the file size if none)."""
    if offset >= size:
        return size
    f.seek(offset - 1)
    while True:
        block = f.read(1 << 16)
        if not block:
            return size
        at = block.find(b"\n")
        if at >= 0:
            return f.tell() - len(block) + at + 1
