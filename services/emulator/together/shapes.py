"""Together AI's JSON shapes and errors as the emulator (a test double) answers them.

Together's Go API sends zero values rather than nulls ("" and 0), ISO-8601 timestamps with
milliseconds and a `Z` for jobs, events and checkpoints, and Unix seconds for files. Errors
share OpenAI's envelope `{"error": {"message", "type", "param", "code"}}` (Together's
`ErrorData`), so they are `OpenAIError`s.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from typing import Any

from ftq.services.emulator.errors import OpenAIError


def iso(timestamp: float) -> str:
    """`2024-05-17T17:35:45.123Z`."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def together_id(rng: random.Random, prefix: str) -> str:
    """`ft-` or `file-` followed by a UUID drawn from the emulator's seeded RNG."""
    return prefix + str(uuid.UUID(int=rng.getrandbits(128), version=4))


def tokens_of(content: bytes) -> int:
    """Rough tokens of a JSONL file, like the OpenAI side: bytes / 4 per line, rounded up."""
    return sum(math.ceil(len(line) / 4) for line in content.splitlines() if line.strip())


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 invalid_request_error."""
    return OpenAIError(400, message, param=param, code=code)


def not_found(message: str, code: str = "not_found") -> OpenAIError:
    """A 404."""
    return OpenAIError(404, message, code=code)


def job_not_found(job_id: str) -> OpenAIError:
    """The 404 for an unknown fine-tune id."""
    return not_found(f"Fine-tune job {job_id} not found", "fine_tune_not_found")


def file_not_found(file_id: str) -> OpenAIError:
    """The 404 for an unknown file id."""
    return not_found(f"File {file_id} not found", "file_not_found")


def model_not_available(model: str) -> OpenAIError:
    """The 404 for a model that cannot be fine-tuned or asked."""
    return not_found(
        f"Unable to access model {model}. Please visit https://api.together.ai/models to view "
        "the list of supported models.",
        "model_not_available",
    )


def unauthorized() -> OpenAIError:
    """Together's 401 when no API key came with the request."""
    return OpenAIError(
        401,
        "Invalid API key provided. You can find your API key at https://api.together.ai/settings.",
        code="invalid_api_key",
    )


def event(
    job_id: str, index: int, when: float, message: str, kind: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """A `fine-tune-event`; `_at` keeps the exact time and is not sent."""
    body: dict[str, Any] = {
        "object": "fine-tune-event",
        "created_at": iso(when),
        "level": "info",
        "message": message,
        "type": kind,
        "param_count": 0,
        "token_count": 0,
        "total_steps": 0,
        "wandb_url": "",
        "step": 0,
        "checkpoint_path": "",
        "model_path": "",
        "training_offset": 0,
        "hash": uuid.uuid5(uuid.NAMESPACE_URL, f"{job_id}/{index}").hex,
    }
    body.update(extra)
    body["_at"] = when
    return body


def public(item: dict[str, Any]) -> dict[str, Any]:
    """An event or checkpoint without its private fields."""
    return {key: value for key, value in item.items() if not key.startswith("_")}
