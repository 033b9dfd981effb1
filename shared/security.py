"""API key hashing and at-rest encryption of signing secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography.fernet import Fernet

from ftq.shared.settings import get_settings

API_KEY_PREFIX = "ftq_sk_"


def new_api_key() -> str:
    """A new random team key (shown once)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The stored form of a key: keyed SHA-256, so a database leak does not reveal keys."""
    pepper = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def constant_time_equals(left: str, right: str) -> bool:
    """Compare secrets without leaking timing."""
    return hmac.compare_digest(left.encode(), right.encode())


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"ftq-at-rest:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage with a key derived from FTQ_SECRET_KEY."""
    key = get_settings().secret_key.get_secret_value()
    return _fernet(key).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored secret."""
    key = get_settings().secret_key.get_secret_value()
    return _fernet(key).decrypt(token.encode()).decode()


# -- signing-secret rotation ------------------------------------------------------------------

MAX_PREVIOUS_SECRETS = 5
ROTATION_OVERLAP = timedelta(hours=24)


def after_rotation(
    replaced: str, previous: list[dict[str, str]], now: datetime
) -> list[dict[str, str]]:
    """The replaced (encrypted) secret joins the ones still in their overlap; expired ones go.

    Each keeps its own overlap, so two rotations within a day drop nothing early. More than
    MAX_PREVIOUS_SECRETS at once drops the oldest: signatures stay a bounded size.
    """
    kept = [entry for entry in previous if _expires(entry) > now]
    kept.append({"secret": replaced, "expires_at": (now + ROTATION_OVERLAP).isoformat()})
    return kept[-MAX_PREVIOUS_SECRETS:]


def signing_secrets(current: str, previous: list[dict[str, str]], now: datetime) -> tuple[str, ...]:
    """The decrypted secrets to sign with: the current one, then replaced ones still overlapping."""
    older = [entry["secret"] for entry in reversed(previous) if _expires(entry) > now]
    return tuple(decrypt(secret) for secret in [current, *older])


def _expires(entry: dict[str, str]) -> datetime:
    when = datetime.fromisoformat(entry["expires_at"])
    return when if when.tzinfo else when.replace(tzinfo=UTC)
