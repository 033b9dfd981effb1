"""Switchable faults of the emulator (a test double of OpenAI): `POST /_emulator/faults`.

Each POST replaces the whole configuration: fields left out are off. Faults never touch
`/_emulator/*`. Probabilities draw from one RNG, reseeded by `seed`, so a test that sends the same
requests in the same order sees the same faults. `only`, when given, limits the request-level
faults (429, 5xx, lost responses, latency) to those routes, written as "METHOD /v1/template".
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ftq.services.emulator.errors import OpenAIError

SERVER_ERRORS = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


class FailWith(BaseModel):
    """The error running jobs fail with."""

    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    param: str | None = None


class Faults(BaseModel):
    """The fault switches."""

    model_config = ConfigDict(extra="forbid")

    rate_429: float = Field(0.0, ge=0.0, le=1.0)
    next_429: int = Field(0, ge=0)
    retry_after_ms: int = Field(1000, ge=0, le=600_000)
    rate_5xx: float = Field(0.0, ge=0.0, le=1.0)
    next_5xx: int = Field(0, ge=0)
    rate_lost_response: float = Field(0.0, ge=0.0, le=1.0)
    next_lost_response: int = Field(0, ge=0)
    latency_ms: int = Field(0, ge=0, le=120_000)
    only: list[str] | None = None
    max_active_jobs: int | None = Field(None, ge=0)
    create_403: bool = False
    fail_jobs_with: FailWith | None = None
    reject_files: bool = False
    seed: int | None = None
    # The live API's quirk (OPENAI.md): a job that has not failed carries `error` as an object
    # of nulls or as `{}`, where the API description and the SDK's types say null.
    live_error_shape: Literal["nulls", "empty"] | None = None


@dataclass
class Draw:
    """What the faults decided for one request."""

    latency_s: float = 0.0
    error: OpenAIError | None = None
    lose_response: bool = False


def draw(faults: Faults, rng: random.Random, route: str) -> Draw:
    """Decide this request's faults; consumes `next_*` counters (caller holds the lock)."""
    if faults.only is not None and route not in faults.only:
        return Draw()
    result = Draw(latency_s=faults.latency_ms / 1000)
    if faults.next_429 or _hit(rng, faults.rate_429):
        faults.next_429 = max(0, faults.next_429 - 1)
        result.error = rate_limited(faults.retry_after_ms)
    elif faults.next_5xx or _hit(rng, faults.rate_5xx):
        faults.next_5xx = max(0, faults.next_5xx - 1)
        result.error = server_error(rng.choice(sorted(SERVER_ERRORS)))
    elif faults.next_lost_response or _hit(rng, faults.rate_lost_response):
        faults.next_lost_response = max(0, faults.next_lost_response - 1)
        result.lose_response = True
    return result


def _hit(rng: random.Random, probability: float) -> bool:
    """A draw only when the probability is set, so unset faults do not move the RNG."""
    return probability > 0 and rng.random() < probability


def rate_limited(retry_after_ms: int) -> OpenAIError:
    """A 429 as OpenAI sends it when requests per minute run out."""
    headers = retry_headers(retry_after_ms)
    message = (
        f"Rate limit reached for requests (emulated fault). Please try again in {retry_after_ms}ms."
    )
    return OpenAIError(
        429, message, type_="rate_limit_error", code="rate_limit_exceeded", headers=headers
    )


def retry_headers(retry_after_ms: int) -> dict[str, str]:
    """`retry-after` (whole seconds, rounded up) and `retry-after-ms`, as OpenAI sends them."""
    seconds = math.ceil(retry_after_ms / 1000)
    return {"retry-after": str(seconds), "retry-after-ms": str(retry_after_ms)}


def server_error(status: int) -> OpenAIError:
    """A 500, 502 or 503 with OpenAI's server_error body."""
    return OpenAIError(status, SERVER_ERRORS[status], type_="server_error")


def lost_response() -> OpenAIError:
    """What a client sees when the request was handled but the answer was lost on the way."""
    return OpenAIError(502, SERVER_ERRORS[502], type_="server_error")
