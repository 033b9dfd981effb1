"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign, build headers, verify."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
TOLERANCE_SECONDS = 300
USER_AGENT = "ftq-webhooks/1"


class InvalidSignature(ValueError):
    """A webhook failed verification: missing headers, stale timestamp or no matching signature."""


def generate_secret() -> str:
    """A new endpoint secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_…` secret; ValueError if it is not valid base64."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # other senders' secrets may come unpadded
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret is not valid base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _digest(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """HMAC-SHA256 of `id.timestamp.body` over the raw body bytes."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(secret_key(secret), message, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    return "v1," + base64.b64encode(_digest(secret, msg_id, timestamp, body)).decode("ascii")


def signature_header(secrets: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated (rotation)."""
    signatures = [sign(secret, msg_id, timestamp, body) for secret in secrets]
    if not signatures:
        raise ValueError("at least one secret is needed to sign a webhook")
    return " ".join(signatures)


def build_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Iterable[str]
) -> dict[str, str]:
    """All headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise InvalidSignature unless one `v1` signature matches."""
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    header = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and header):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    timestamp = _checked_timestamp(raw_timestamp, tolerance, time.time() if now is None else now)
    expected = _digest(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in _v1_signatures(header)):
        raise InvalidSignature("no matching signature")


def _checked_timestamp(raw: str, tolerance: int, now: float) -> int:
    """The header's timestamp, refused when not an integer or outside the tolerance."""
    if not raw.isdigit():
        raise InvalidSignature("webhook-timestamp is not a Unix time in seconds")
    timestamp = int(raw)
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    return timestamp


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` signatures of a header; other versions and garbage are skipped."""
    found = []
    for item in header.split():
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    return found
