"""Collecting findings cheaply: counts by code and the first few in line order."""

from __future__ import annotations

from ftq.shared.datasets.validation.report import MAX_LISTED, Finding, Findings

FindingTuple = tuple[int | None, str, str, str | None]


class FindingLog:
    """Findings of one severity for one part of a file; lines may be relative to the part."""

    __slots__ = ("counts", "items", "limit")

    def __init__(self, limit: int | None = MAX_LISTED) -> None:
        self.counts: dict[str, int] = {}
        self.items: list[FindingTuple] = []
        self.limit = limit

    def add(self, line: int | None, code: str, message: str, param: str | None = None) -> None:
        """Record one finding."""
        self.counts[code] = self.counts.get(code, 0) + 1
        if self.limit is None or len(self.items) < self.limit:
            self.items.append((line, code, message, param))

    def count_more(self, code: str, n: int) -> None:
        """Count `n` more findings of `code` without listing them."""
        if n > 0:
            self.counts[code] = self.counts.get(code, 0) + n

    def merge(self, other: FindingLog, line_offset: int = 0) -> None:
        """Add another part's findings, shifting its line numbers by `line_offset`."""
        for code, n in other.counts.items():
            self.counts[code] = self.counts.get(code, 0) + n
        for line, code, message, param in other.items:
            shifted = None if line is None else line + line_offset
            self.items.append((shifted, code, message, param))

    @property
    def total(self) -> int:
        """How many findings, listed or not."""
        return sum(self.counts.values())

    def summary(self) -> Findings:
        """The report section: file-wide findings first, then by line, the first 100."""
        ordered = sorted(self.items, key=lambda f: (f[0] is not None, f[0] or 0))
        listed = [Finding(line=ln, code=c, message=m, param=p) for ln, c, m, p in ordered]
        return Findings(
            total=self.total,
            by_code=dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            items=listed[:MAX_LISTED],
            truncated=self.total > MAX_LISTED,
        )
