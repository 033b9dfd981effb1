"""Helpers shared by the emulator's routes."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from ftq.services.emulator.errors import JSON_PARSE_MESSAGE, bad_request


async def json_body(request: Request) -> Any:
    """The parsed JSON body, or OpenAI's "could not parse" 400."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad_request(JSON_PARSE_MESSAGE) from None
