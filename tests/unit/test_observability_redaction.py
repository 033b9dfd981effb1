"""Secrets never reach a log line."""

from __future__ import annotations

import logging

import pytest

from ftq.shared.observability.redaction import SecretRedactionFilter


@pytest.mark.parametrize(
    "secret",
    [
        "Bearer ftq_live_abcdef0123456789",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "sk-proj-abcdefghijklmnop1234",
        "ftq_abcdefghijklmnop",
    ],
)
def test_secret_in_message_or_args_is_masked(caplog, secret):
    logger = logging.getLogger("ftq.test.redaction")
    logger.addFilter(SecretRedactionFilter())
    try:
        with caplog.at_level(logging.INFO, logger="ftq.test.redaction"):
            logger.info("sending with %s to team_1", secret)
            logger.info(f"inline {secret} end")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert secret.split()[-1] not in text
    assert text.count("[REDACTED]") == 2
    assert "team_1" in text
