"""Call counts and rate-limit headers of the emulator (a test double of OpenAI).

Rate-limit headers follow OpenAI's names. The figures are informative only: the emulator never
refuses a request for exceeding them (use the 429 fault for that). Limits: 10,000 requests and
2,000,000 tokens per minute; a request costs its body length / 4 tokens; "reset" is how long the
used quota takes to refill, printed as OpenAI does (`6ms`, `1s`, `6m0s`).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any

REQUEST_LIMIT = 10_000
TOKEN_LIMIT = 2_000_000
WINDOW_S = 60.0
LOG_SIZE = 5000


def duration(seconds: float) -> str:
    """Go-style duration as OpenAI prints it: 6ms, 1s, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


class Telemetry:
    """Per-route call counts, creation counts and a one-minute usage window (caller locks)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.jobs_created = 0
        self.files_created = 0
        self.window: deque[tuple[float, int]] = deque()
        self.window_tokens = 0
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)

    def record(self, route: str, tokens: int, now: float) -> dict[str, str]:
        """Count one call; return its rate-limit headers."""
        self.calls[route] += 1
        while self.window and self.window[0][0] <= now - WINDOW_S:
            self.window_tokens -= self.window.popleft()[1]
        self.window.append((now, tokens))
        self.window_tokens += tokens
        used_requests, used_tokens = len(self.window), self.window_tokens
        return {
            "x-ratelimit-limit-requests": str(REQUEST_LIMIT),
            "x-ratelimit-remaining-requests": str(max(0, REQUEST_LIMIT - used_requests)),
            "x-ratelimit-reset-requests": duration(used_requests * WINDOW_S / REQUEST_LIMIT),
            "x-ratelimit-limit-tokens": str(TOKEN_LIMIT),
            "x-ratelimit-remaining-tokens": str(max(0, TOKEN_LIMIT - used_tokens)),
            "x-ratelimit-reset-tokens": duration(used_tokens * WINDOW_S / TOKEN_LIMIT),
        }

    def remember(self, entry: dict[str, Any]) -> None:
        """Keep one request's shape for `/_emulator/requests` (the oldest drop out)."""
        self.log.append(entry)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last `limit` requests, newest first."""
        newest = list(self.log)[-limit:]
        newest.reverse()
        return [dict(entry) for entry in newest]

    def snapshot(self) -> dict[str, Any]:
        """The `/_emulator/stats` body (without job/file totals the store adds)."""
        return {
            "calls": dict(sorted(self.calls.items())),
            "requests_total": sum(self.calls.values()),
            "faults_injected": dict(self.faults),
            "jobs_created": self.jobs_created,
            "files_created": self.files_created,
        }
