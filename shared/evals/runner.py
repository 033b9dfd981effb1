"""Ask models for answers: a bounded thread pool, a rate limit per provider, provider-style retries.

`run_all` keeps at most `concurrency` requests in flight and hands finished answers to `on_batch`
in small batches (the caller stores them, so a crash loses at most one batch); it stops handing
out work at a deadline or when `on_batch` says the eval was taken away. `ask` retries
`ProviderRetryable` (429, 5xx, timeouts) with exponential back-off that honours `retry_after`,
capped; `ProviderRejected` / `ProviderUnavailable` become the item's error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from ftq.shared.evals import judge
from ftq.shared.providers.base import Provider, ProviderError, ProviderRetryable

log = logging.getLogger(__name__)

BATCH_SIZE = 25
BATCH_SECONDS = 0.5


@dataclass(frozen=True)
class Work:
    """One question for one model."""

    index: int
    model: str
    messages: list[dict[str, Any]]


@dataclass(frozen=True)
class Answer:
    """A model's reply to one item, or why there is none."""

    index: int
    model: str
    output: str | None
    error: str | None
    attempts: int
    score: float | None = None  # set when graded here (the judge), else graded on storing
    reason: str | None = None  # the judge's reason


class RateLimiter:
    """A token bucket shared by the threads that call one provider (rate 0: unlimited)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Wait for this caller's turn."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self.clock()
            turn = max(self._next, now)
            self._next = turn + 1.0 / self.rate
        if turn > now:
            sleep(turn - now)


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(provider: str, rate: float) -> RateLimiter:
    """The process-wide limiter of a provider (every eval running here shares it)."""
    with _limiters_lock:
        limiter = _limiters.get(provider)
        if limiter is None or limiter.rate != rate:
            limiter = _limiters[provider] = RateLimiter(rate)
        return limiter


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait on retryable provider errors."""

    max_retries: int = 5
    max_backoff: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, exc: ProviderRetryable) -> float:
        """Exponential (0.5, 1, 2 … s) but never shorter than retry-after; capped."""
        return min(max(0.5 * 2.0**attempt, exc.retry_after or 0.0), self.max_backoff)


def ask(
    provider: Provider,
    work: Work,
    *,
    limiter: RateLimiter,
    policy: RetryPolicy,
    max_tokens: int | None = None,
    temperature: float = 0.0,
) -> Answer:
    """One model's answer to one item, retried like the provider layer."""
    attempt = 0
    while True:
        attempt += 1
        limiter.acquire(policy.sleep)
        try:
            result = provider.complete_chat(
                work.model, work.messages, max_tokens=max_tokens, temperature=temperature
            )
        except ProviderRetryable as exc:
            if attempt > policy.max_retries:
                return _failed(work, f"the provider kept failing: {exc.message}", attempt)
            policy.sleep(policy.delay(attempt - 1, exc))
            continue
        except ProviderError as exc:
            return _failed(work, exc.message, attempt)
        except Exception as exc:  # an unexpected client failure must not sink the whole eval
            log.warning("eval item %s/%s failed: %s", work.model, work.index, type(exc).__name__)
            return _failed(work, f"unexpected error: {type(exc).__name__}", attempt)
        return Answer(work.index, work.model, result.text, None, attempt)


def judged(
    provider: Provider,
    config: Mapping[str, Any],
    answer: Answer,
    question: str,
    references: list[str],
    *,
    limiter: RateLimiter,
    policy: RetryPolicy,
) -> Answer:
    """`answer` with the judge's score and reason, or the judge's failure as its error."""
    if answer.output is None or answer.error is not None:
        return answer
    asked = Work(
        answer.index,
        str(config["model"]),
        judge.messages(config, question, references, answer.output),
    )
    reply = ask(
        provider, asked, limiter=limiter, policy=policy, temperature=float(config["temperature"])
    )
    attempts = answer.attempts + reply.attempts
    if reply.output is None:
        return replace(answer, error=f"judge: {reply.error}"[:2000], attempts=attempts)
    try:
        score, reason = judge.parse_reply(reply.output)
    except judge.JudgeReplyError as exc:
        return replace(answer, error=f"judge: {exc}"[:2000], attempts=attempts)
    return replace(answer, score=score, reason=reason, attempts=attempts)


def _failed(work: Work, message: str, attempts: int) -> Answer:
    return Answer(work.index, work.model, None, message[:2000], attempts)


def run_all(
    work: list[Work],
    ask_one: Callable[[Work], Answer],
    *,
    concurrency: int,
    on_batch: Callable[[list[Answer]], bool],
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Answer every item (True), or stop early at the deadline or when on_batch says no."""
    pending = iter(work)
    in_flight: set[Future[Answer]] = set()
    batch: list[Answer] = []
    flushed_at = clock()
    keep_going, exhausted = True, False
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval") as pool:
        while True:
            while keep_going and not exhausted and len(in_flight) < concurrency:
                if deadline is not None and clock() >= deadline:
                    keep_going = False
                    break
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    break
                in_flight.add(pool.submit(ask_one, item))
            if not in_flight:
                break
            done, in_flight = wait(in_flight, timeout=BATCH_SECONDS, return_when=FIRST_COMPLETED)
            batch.extend(future.result() for future in done)
            if batch and (len(batch) >= BATCH_SIZE or clock() - flushed_at >= BATCH_SECONDS):
                keep_going = on_batch(batch) and keep_going
                batch, flushed_at = [], clock()
        if batch:
            keep_going = on_batch(batch) and keep_going
    return keep_going and exhausted
