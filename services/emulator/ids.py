"""Identifier helpers for the emulator (a test double of OpenAI): random and hash-derived ids."""

from __future__ import annotations

import hashlib
import random
import string

ALPHABET = string.ascii_letters + string.digits


def random_id(rng: random.Random, prefix: str, length: int) -> str:
    """`prefix` followed by `length` random base62 characters."""
    return prefix + "".join(rng.choice(ALPHABET) for _ in range(length))


def stable_id(prefix: str, length: int, *parts: object) -> str:
    """`prefix` followed by `length` base62 characters derived from `parts`."""
    digest = int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest(), "big")
    chars = []
    for _ in range(length):
        digest, index = divmod(digest, len(ALPHABET))
        chars.append(ALPHABET[index])
    return prefix + "".join(chars)


def unit_float(*parts: object) -> float:
    """A deterministic number in [0, 1) derived from `parts`."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
