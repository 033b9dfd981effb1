"""Standard Webhooks signing, checked against the reference `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from ftq.shared.webhooks.signing import (
    InvalidSignature,
    build_headers,
    generate_secret,
    secret_key,
    sign,
    signature_header,
    verify,
)

BODY = b'{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00Z","data":{"id":"ftj_1"}}'


def test_generated_secret_is_whsec_and_32_random_bytes():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_secret() != secret


def test_signature_equals_the_reference_implementation():
    secret = generate_secret()
    reference = Webhook(secret)
    ts = 1_700_000_000
    expected = reference.sign("msg_1", datetime.fromtimestamp(ts, tz=UTC), BODY.decode())
    assert sign(secret, "msg_1", ts, BODY) == expected


def test_reference_package_verifies_our_headers():
    secret = generate_secret()
    headers = build_headers("evt_1", int(time.time()), BODY, [secret])
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "ftq-webhooks/1"
    assert headers["webhook-id"] == "evt_1"


def test_rotation_sends_both_signatures_and_each_secret_verifies_alone():
    old, new, other = generate_secret(), generate_secret(), generate_secret()
    headers = build_headers("evt_1", int(time.time()), BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(BODY, headers)


def test_tampered_body_is_rejected():
    secret = generate_secret()
    headers = build_headers("evt_1", int(time.time()), BODY, [secret])
    tampered = BODY.replace(b"ftj_1", b"ftj_2")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    with pytest.raises(InvalidSignature):
        verify(secret, tampered, headers)


def test_signature_covers_the_exact_raw_bytes():
    secret = generate_secret()
    raw = '{"b": 1,   "a": "\u00e9t\u00e9"}\n'.encode()
    headers = build_headers("evt_1", int(time.time()), raw, [secret])
    Webhook(secret).verify(raw, headers)
    reserialised = json.dumps(json.loads(raw)).encode()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(reserialised, headers)


def test_changed_id_or_timestamp_is_rejected():
    secret = generate_secret()
    now = int(time.time())
    headers = build_headers("evt_1", now, BODY, [secret])
    with pytest.raises(InvalidSignature):
        verify(secret, BODY, {**headers, "webhook-id": "evt_2"})
    with pytest.raises(InvalidSignature):
        verify(secret, BODY, {**headers, "webhook-timestamp": str(now + 1)})


def test_our_verify_accepts_valid_and_case_insensitive_headers():
    secret = generate_secret()
    headers = build_headers("evt_1", int(time.time()), BODY, [secret])
    verify(secret, BODY, {key.upper(): value for key, value in headers.items()})


def test_our_verify_enforces_the_tolerance():
    secret = generate_secret()
    headers = build_headers("evt_1", 1_000_000, BODY, [secret])
    verify(secret, BODY, headers, now=1_000_000 + 300)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, BODY, headers, now=1_000_000 + 301)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, BODY, headers, now=1_000_000 - 301)


def test_our_verify_refuses_missing_headers_and_other_versions():
    secret = generate_secret()
    headers = build_headers("evt_1", int(time.time()), BODY, [secret])
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, BODY, {k: v for k, v in headers.items() if k != "webhook-signature"})
    v2_only = headers["webhook-signature"].replace("v1,", "v2,")
    with pytest.raises(InvalidSignature, match="no matching"):
        verify(secret, BODY, {**headers, "webhook-signature": v2_only})
    with pytest.raises(InvalidSignature):
        verify(secret, BODY, {**headers, "webhook-signature": "v1,!!notbase64!!"})


def test_signature_header_needs_a_secret_and_secrets_must_be_base64():
    with pytest.raises(ValueError):
        signature_header([], "evt_1", 1, BODY)
    with pytest.raises(ValueError):
        secret_key("whsec_not*base64")


def test_unpadded_secrets_from_other_senders_are_accepted():
    key = bytes(range(24))
    unpadded = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    padded = "whsec_" + base64.b64encode(bytes(range(23))).decode()
    assert secret_key(unpadded) == key
    assert secret_key(padded.rstrip("=")) == bytes(range(23))
