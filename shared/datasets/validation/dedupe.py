"""Exact duplicate detection in bounded memory.

Line digests go into a temporary SQLite table, which keeps a small page cache in memory and
spills to a temporary file, so a file of millions of examples does not hold millions of Python
objects; one grouped query then finds the repeats.
"""

from __future__ import annotations

import sqlite3
from array import array

_FIRST_COPIES = """
SELECT d.line, f.first FROM d
JOIN (SELECT h, MIN(line) AS first FROM d GROUP BY h HAVING COUNT(*) > 1) AS f ON d.h = f.h
WHERE d.line > f.first ORDER BY d.line LIMIT ?
"""


class Deduper:
    """Collects (digest, line) pairs and reports the lines that repeat an earlier line."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE d (h INTEGER NOT NULL, line INTEGER NOT NULL)")
        self.count = 0

    def add(self, digests: array[int], lines: array[int], line_offset: int) -> None:
        """Record the digests of one range, whose line numbers start after `line_offset`."""
        self._db.executemany(
            "INSERT INTO d VALUES (?, ?)",
            zip(digests, (line + line_offset for line in lines), strict=True),
        )
        self.count += len(digests)

    def duplicates(self, limit: int) -> tuple[int, list[tuple[int, int]]]:
        """How many lines repeat an earlier one, and the first `limit` as (line, first line)."""
        (distinct,) = self._db.execute("SELECT COUNT(DISTINCT h) FROM d").fetchone()
        repeats = self.count - distinct
        if repeats == 0:
            return 0, []
        rows = self._db.execute(_FIRST_COPIES, (limit,)).fetchall()
        return repeats, [(int(line), int(first)) for line, first in rows]

    def close(self) -> None:
        """Drop the temporary table."""
        self._db.close()
