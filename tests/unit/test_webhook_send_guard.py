"""The SSRF guard at send time: every delivery re-resolves and re-checks its destination."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from ftq.services.cli.receiver import WebhookReceiver
from ftq.shared.ids import new_id
from ftq.shared.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from ftq.shared.security import encrypt
from ftq.shared.webhooks import service, ssrf
from ftq.shared.webhooks.dispatcher import Dispatcher
from ftq.shared.webhooks.signing import generate_secret
from tests.factories import team_row


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver().start()
    yield hooks
    hooks.stop()


@pytest.fixture(scope="module")
def guarded() -> Iterator[Dispatcher]:
    """A dispatcher with the production guard: nothing allowlisted."""
    sending = Dispatcher(timeout=1, allow_hosts=[], require_https=False)
    yield sending
    sending.close()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What names resolve to, changeable between registration and sending."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[ssrf.IPAddress]:
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(ssrf, "resolve_host", resolve)
    return table


def _endpoint_row(session: Session, team: Any, url: str) -> WebhookEndpoint:
    """An endpoint stored as registered earlier (e.g. under a laxer allowlist)."""
    endpoint = WebhookEndpoint(
        id=new_id("we"),
        team_id=team.id,
        url=url,
        events=[],
        secret_encrypted=encrypt(generate_secret()),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def _send_one(session: Session, team: Any, dispatcher: Dispatcher) -> WebhookAttempt:
    event_id = service.emit(session, team.id, "job.succeeded", {"id": "ftj_1"})
    query = select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
    delivery = session.scalars(query).one()
    assert service.deliver(session, delivery.id, dispatcher) == "pending"
    query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
    return session.scalars(query).one()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_a_loopback_listener_is_never_contacted_without_the_allowlist(
    session: Session, receiver: WebhookReceiver, guarded: Dispatcher, host: str
) -> None:
    team, _ = team_row(session)
    _endpoint_row(session, team, f"http://{host}:{receiver.port}/hooks")
    attempt = _send_one(session, team, guarded)
    assert attempt.error is not None and attempt.error.startswith("refused:")
    assert "loopback" in attempt.error and attempt.status_code is None
    assert receiver.received == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::ffff:10.0.0.1]/hook", "IPv4-mapped"),
        ("http://[fd00::1]/hook", "unique-local"),
    ],
)
def test_non_public_literals_are_refused_at_send_time(
    session: Session, guarded: Dispatcher, url: str, why: str
) -> None:
    team, _ = team_row(session)
    _endpoint_row(session, team, url)
    attempt = _send_one(session, team, guarded)
    assert attempt.error is not None and attempt.error.startswith("refused:")
    assert why in attempt.error


@pytest.mark.parametrize("inward", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"])
def test_a_name_rebound_to_a_private_address_after_registration_is_refused(
    session: Session, guarded: Dispatcher, dns: dict[str, list[str]], inward: str
) -> None:
    dns["hooks.example.com"] = ["93.184.216.34"]
    team, _ = team_row(session)
    service.check_destination("http://hooks.example.com/x")  # passes at registration
    _endpoint_row(session, team, "http://hooks.example.com/x")
    dns["hooks.example.com"] = [inward]
    attempt = _send_one(session, team, guarded)
    assert attempt.error == (
        f"refused: hooks.example.com resolves to "
        f"{ssrf.refusal_reason(ipaddress.ip_address(inward))} address {inward}"
    )


def test_a_redirect_to_the_metadata_address_is_not_followed(
    session: Session, receiver: WebhookReceiver
) -> None:
    receiver.status_code = 302
    receiver.reply_headers = {"location": "http://169.254.169.254/latest/meta-data/"}
    team, _ = team_row(session)
    _endpoint_row(session, team, receiver.url)
    local = Dispatcher(timeout=1, allow_hosts=["127.0.0.1"], require_https=False)
    try:
        attempt = _send_one(session, team, local)
    finally:
        local.close()
    assert attempt.status_code == 302 and len(receiver.received) == 1
    assert attempt.error == (
        "redirect to http://169.254.169.254/latest/meta-data/ not followed (HTTP 302)"
    )
