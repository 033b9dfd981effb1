"""The eval runner: bounded concurrency, a rate limit per provider, provider-style retries."""

from __future__ import annotations

import threading
import time
from typing import Any

from ftq.shared.evals.runner import Answer, RateLimiter, RetryPolicy, Work, ask, run_all
from ftq.shared.providers.base import ChatResult, ProviderRejected, ProviderRetryable


class FakeProvider:
    """Answers after a pause, counting how many calls overlap; scripted failures first."""

    name = "fake"

    def __init__(self, failures: list[Exception] | None = None, pause: float = 0.0) -> None:
        self.failures = list(failures or [])
        self.pause = pause
        self.lock = threading.Lock()
        self.active = self.most_active = self.calls = 0

    def complete_chat(self, model: str, messages: list[dict[str, Any]], **_: Any) -> ChatResult:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            failure = self.failures.pop(0) if self.failures else None
        try:
            time.sleep(self.pause)
            if failure is not None:
                raise failure
            return ChatResult(text=f"{model}:{messages[-1]['content']}")
        finally:
            with self.lock:
                self.active -= 1


def work(n: int) -> list[Work]:
    """n single-question items for one model."""
    return [Work(i, "m", [{"role": "user", "content": str(i)}]) for i in range(n)]


def test_no_more_than_concurrency_requests_are_in_flight() -> None:
    provider = FakeProvider(pause=0.02)
    stored: list[Answer] = []
    limiter, policy = RateLimiter(0), RetryPolicy()

    def ask_one(item: Work) -> Answer:
        return ask(provider, item, limiter=limiter, policy=policy)  # type: ignore[arg-type]

    def keep(batch: list[Answer]) -> bool:
        stored.extend(batch)
        return True

    assert run_all(work(30), ask_one, concurrency=3, on_batch=keep) is True
    assert provider.most_active == 3
    assert sorted(a.index for a in stored) == list(range(30))
    assert all(a.output == f"m:{a.index}" for a in stored)


def test_the_rate_limit_spaces_requests() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = RateLimiter(4.0, clock=lambda: now[0])
    for _ in range(5):
        limiter.acquire(sleep)
    assert waits == [0.25, 0.5, 0.75, 1.0], "5 requests at 4/s take a second"


def test_retryable_errors_back_off_honouring_retry_after_then_give_up() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_retries=2, max_backoff=5.0, sleep=slept.append)
    busy = ProviderRetryable("slow down", retry_after=3.0, status=429)
    flaky = FakeProvider([busy, ProviderRetryable("boom", status=500)])
    answer = ask(flaky, work(1)[0], limiter=RateLimiter(0), policy=policy)  # type: ignore[arg-type]
    assert (answer.output, answer.error, answer.attempts) == ("m:0", None, 3)
    assert slept == [3.0, 1.0], "retry-after wins over the shorter back-off"

    down = FakeProvider([busy] * 5)
    failed = ask(down, work(1)[0], limiter=RateLimiter(0), policy=policy)  # type: ignore[arg-type]
    assert failed.output is None and failed.attempts == 3
    assert failed.error == "the provider kept failing: slow down"


def test_a_rejected_request_is_the_items_error_without_retry() -> None:
    provider = FakeProvider([ProviderRejected("The model `x` does not exist", status=404)])
    answer = ask(provider, work(1)[0], limiter=RateLimiter(0), policy=RetryPolicy())  # type: ignore[arg-type]
    assert (answer.error, provider.calls) == ("The model `x` does not exist", 1)


def test_a_deadline_stops_handing_out_work() -> None:
    provider = FakeProvider(pause=0.05)
    stored: list[Answer] = []
    start = time.monotonic()

    def ask_one(item: Work) -> Answer:
        return ask(provider, item, limiter=RateLimiter(0), policy=RetryPolicy())  # type: ignore[arg-type]

    finished = run_all(
        work(100),
        ask_one,
        concurrency=2,
        on_batch=lambda batch: stored.extend(batch) is None,
        deadline=start + 0.2,
    )
    assert finished is False
    assert 2 <= len(stored) < 100, "what was in flight is kept, the rest waits for the next run"
