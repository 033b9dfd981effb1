"""Prefixed, sortable, random identifiers (`ds_…`, `ftj_…`)."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 36)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id: prefix, 9 base36 chars of milliseconds (sortable), 12 random chars."""
    millis = int(time.time() * 1000)
    return f"{prefix}_{_base36(millis, 9)}{_base36(secrets.randbits(62), 12)}"
