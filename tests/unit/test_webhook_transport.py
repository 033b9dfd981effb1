"""The SSRF-safe sender against real local HTTP(S) servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ftq.shared.webhooks.transport import (
    AsyncWebhookSender,
    SendResult,
    WebhookSender,
    parse_retry_after,
    snippet,
)

LOCAL = ["127.0.0.1"]


@dataclass
class Reply:
    """What the test server answers."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0


@dataclass
class Seen:
    """One request the test server received."""

    path: str
    headers: dict[str, str]
    body: bytes


class Server(ThreadingHTTPServer):
    """A keep-alive HTTP/1.1 server that records requests and counts accepted connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, reply: Callable[[Seen], Reply], address: tuple[str, int]) -> None:
        super().__init__(address, Handler)
        self.reply = reply
        self.seen: list[Seen] = []
        self.connections = 0
        self.lock = threading.Lock()

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        """Clients that hang up early (timeouts under test) are expected."""

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/hook?x=1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to every keep-alive request
    server: Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.server.lock:
            self.server.seen.append(seen)
        reply = self.server.reply(seen)
        time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self._write_body(reply)

    def _write_body(self, reply: Reply) -> None:
        if not reply.trickle:
            self.wfile.write(reply.body)
            return
        for i in range(len(reply.body)):
            self.wfile.write(reply.body[i : i + 1])
            self.wfile.flush()
            time.sleep(reply.trickle)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start servers answering with a fixed Reply or a function of the request."""
    servers: list[Server] = []

    def start(
        reply: Reply | Callable[[Seen], Reply] = Reply(),
        tls: ssl.SSLContext | None = None,
        address: tuple[str, int] = ("127.0.0.1", 0),
    ) -> Server:
        server = Server(reply if callable(reply) else (lambda _seen: reply), address)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class FakeDNS:
    """Answers for made-up names; a name's answers are used in turn, the last one repeating."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def __setitem__(self, name: str, answers: list[str]) -> None:
        self.answers[name] = list(answers)

    def answer(self, name: str) -> str:
        self.lookups.append(name)
        queue = self.answers[name]
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    """Patch socket.getaddrinfo (what the guard uses) for the names a test sets."""
    fake = FakeDNS()
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host not in fake.answers:
            return real(host, port, *args, **kwargs)
        address = fake.answer(host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return fake


def post(sender: WebhookSender, url: str, body: bytes = b'{"a":1}') -> SendResult:
    return sender.send(url, body, {"webhook-id": "evt_1", "content-type": "application/json"})


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    with WebhookSender(allow_hosts=LOCAL, require_https=False, timeout=2.0) as s:
        yield s


def test_200_is_ok_and_the_exact_body_arrives(serve, sender):
    server = serve(Reply(200, b"thanks"))
    body = b'{"type": "job.succeeded",  "x": "\xc3\xa9"}'
    result = post(sender, server.url(), body)
    assert (result.ok, result.status_code, result.error) == (True, 200, None)
    assert result.response_snippet == "thanks"
    assert result.duration_ms > 0
    [seen] = server.seen
    assert seen.body == body
    assert seen.path == "/hook?x=1"
    assert seen.headers["webhook-id"] == "evt_1"
    assert seen.headers["content-length"] == str(len(body))


def test_500_is_a_failure_with_the_response_snippet(serve, sender):
    result = post(sender, serve(Reply(500, b"boom")).url())
    assert (result.ok, result.status_code, result.error) == (False, 500, "HTTP 500")
    assert result.response_snippet == "boom"
    assert not result.gone


def test_410_means_gone(serve, sender):
    result = post(sender, serve(Reply(410, b"")).url())
    assert (result.ok, result.gone, result.status_code) == (False, True, 410)


def test_redirect_is_reported_and_not_followed(serve, sender):
    server = serve(Reply(301, b"", {"Location": "http://10.0.0.1/"}))
    result = post(sender, server.url())
    assert not result.ok
    assert result.status_code == 301
    assert result.error == "redirect to http://10.0.0.1/ not followed (HTTP 301)"
    assert len(server.seen) == 1


def test_redirect_to_a_local_allowed_url_is_not_followed_either(serve, sender):
    target = serve(Reply(200))
    server = serve(Reply(307, b"", {"Location": target.url()}))
    result = post(sender, server.url())
    assert result.status_code == 307 and not result.ok
    assert target.seen == []


def test_slow_server_times_out(serve):
    server = serve(Reply(delay=1.5))
    with WebhookSender(allow_hosts=LOCAL, require_https=False, timeout=0.2) as short:
        started = time.monotonic()
        result = post(short, server.url())
    assert result.error == "timeout (read)"
    assert result.status_code is None and not result.ok
    assert time.monotonic() - started < 1.0


def test_trickling_response_hits_the_total_time_limit(serve):
    server = serve(Reply(body=b"x" * 100, trickle=0.05))
    with WebhookSender(
        allow_hosts=LOCAL, require_https=False, timeout=1.0, total_timeout=0.5
    ) as short:
        started = time.monotonic()
        result = post(short, server.url())
    assert result.error == "timeout (total time limit)"
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_a_result(sender):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = post(sender, f"http://127.0.0.1:{port}/")
    assert result.error == "connection refused"
    assert result.status_code is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("0", 0.0), ("soon", None), ("-5", None)],
)
def test_retry_after_seconds_are_parsed(serve, sender, header, expected):
    result = post(sender, serve(Reply(429, b"slow down", {"Retry-After": header})).url())
    assert result.status_code == 429
    assert result.retry_after_seconds == expected


def test_retry_after_http_date_is_parsed(serve, sender):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    result = post(sender, serve(Reply(503, b"", {"Retry-After": header})).url())
    assert result.retry_after_seconds is not None
    assert 85 <= result.retry_after_seconds <= 91


def test_parse_retry_after_directly():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:02:00 GMT", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after(" 30 ", now) == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("\u00b2") is None


def test_snippet_is_500_chars_safely_decoded():
    assert snippet(b"a" * 10_000) == "a" * 500
    assert snippet("\u00e9".encode() * 600) == "\u00e9" * 500
    assert snippet(b"ok\xff\x00") == "ok\ufffd\ufffd"


def test_long_response_snippet(serve, sender):
    result = post(sender, serve(Reply(400, b"e" * 100_000)).url())
    assert result.response_snippet == "e" * 500


def test_sequential_sends_reuse_one_keep_alive_connection(serve, sender):
    server = serve(Reply(200))
    results = [post(sender, server.url()) for _ in range(25)]
    assert all(r.ok for r in results)
    assert len(server.seen) == 25
    assert server.connections == 1


def test_concurrent_sends_from_threads_stay_within_the_per_host_limit(serve):
    server = serve(Reply(200, delay=0.02))
    with (
        WebhookSender(allow_hosts=LOCAL, require_https=False, max_connections_per_host=3) as s,
        ThreadPoolExecutor(max_workers=12) as pool,
    ):
        results = list(pool.map(lambda _: post(s, server.url()), range(60)))
    assert all(r.ok for r in results)
    assert len(server.seen) == 60
    assert 1 <= server.connections <= 3


def test_proxy_environment_is_ignored(serve, sender, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = serve(Reply(200))
    assert post(sender, server.url()).ok
    assert len(server.seen) == 1


def test_name_resolving_to_a_private_address_is_refused_at_send_time(serve, sender, dns):
    server = serve(Reply(200))
    dns["hooks.example.test"] = ["10.0.0.1"]
    result = post(sender, server.url("hooks.example.test"))
    assert result.error == "refused: hooks.example.test resolves to private address 10.0.0.1"
    assert result.status_code is None
    assert server.seen == []


def test_private_literal_is_refused_without_connecting(sender):
    result = post(sender, "http://169.254.169.254/latest/meta-data/")
    assert result.error == "refused: 169.254.169.254 is a link-local (cloud metadata) address"


def test_unresolvable_name_is_a_dns_error(sender, dns):
    dns["gone.example.test"] = []
    result = post(sender, "http://gone.example.test/")
    assert result.error is not None
    assert result.error.startswith("dns error: gone.example.test could not be resolved")


def test_request_goes_to_the_checked_ip_with_the_original_host_header(serve, dns):
    checked = serve(Reply(200))
    # Same port on another loopback address: where a second lookup would send the request.
    elsewhere = serve(Reply(200), address=("127.0.0.2", checked.port))
    dns["hooks.example.test"] = ["127.0.0.1", "127.0.0.2"]
    with WebhookSender(allow_hosts=["hooks.example.test"], require_https=False) as s:
        first = post(s, checked.url("hooks.example.test"))
        assert dns.lookups == ["hooks.example.test"]  # the check's, and no second lookup
        second = post(s, checked.url("hooks.example.test"))
    assert first.ok and second.ok
    assert [seen.headers["host"] for seen in checked.seen] == [
        f"hooks.example.test:{checked.port}"
    ] * 2
    # The second send resolved to 127.0.0.2 but reused the keep-alive connection that was
    # opened to the address checked then; no request ever went to an unchecked address.
    assert dns.lookups == ["hooks.example.test"] * 2
    assert elsewhere.seen == [] and elsewhere.connections == 0


def test_new_connections_go_to_the_newly_checked_address(serve, dns):
    old = serve(Reply(200, b"old"))
    serve(Reply(200, b"new"), address=("127.0.0.2", old.port))
    dns["hooks.example.test"] = ["127.0.0.1", "127.0.0.2"]
    allow = ["hooks.example.test"]
    with WebhookSender(allow_hosts=allow, require_https=False) as first:
        assert post(first, old.url("hooks.example.test")).response_snippet == "old"
    with WebhookSender(allow_hosts=allow, require_https=False) as second:
        assert post(second, old.url("hooks.example.test")).response_snippet == "new"


def test_https_is_required_by_default(serve):
    server = serve(Reply(200))
    with WebhookSender(allow_hosts=LOCAL) as strict:
        result = post(strict, server.url())
    assert result.error is not None and "use https" in result.error
    assert server.seen == []


# TLS: a test CA, a certificate for hooks.example.test, SNI recorded by the server.


@dataclass
class Pki:
    client: ssl.SSLContext
    server: ssl.SSLContext
    sni: list[str | None]


def _certificate(subject: str, key, issuer_key, issuer: x509.Name | None, ca: bool):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("ftq test CA", ca_key, ca_key, None, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("hooks.example.test", leaf_key, ca_key, ca.subject, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(
        leaf.public_bytes(pem)
        + leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem")
    sni: list[str | None] = []
    server.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc,return-value]
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return Pki(client, server, sni)


def test_tls_verifies_the_original_hostname_and_sends_it_as_sni(serve, dns, pki):
    server = serve(Reply(200, b"secure"), tls=pki.server)
    dns["hooks.example.test"] = ["127.0.0.1"]
    allow = ["hooks.example.test"]
    with WebhookSender(allow_hosts=allow, ssl_context=pki.client, timeout=2.0) as s:
        result = post(s, server.url("hooks.example.test", scheme="https"))
    assert result.ok, result
    assert result.response_snippet == "secure"
    assert pki.sni == ["hooks.example.test"]
    assert server.seen[0].headers["host"] == f"hooks.example.test:{server.port}"


def test_tls_refuses_a_certificate_for_another_name(serve, dns, pki):
    server = serve(Reply(200), tls=pki.server)
    dns["other.example.test"] = ["127.0.0.1"]
    with WebhookSender(allow_hosts=["other.example.test"], ssl_context=pki.client) as s:
        result = post(s, server.url("other.example.test", scheme="https"))
    assert not result.ok
    assert result.error is not None and result.error.startswith("tls error:")
    assert "other.example.test" in result.error
    assert server.seen == []


def test_tls_refuses_an_unknown_ca_by_default(serve, dns, pki):
    server = serve(Reply(200), tls=pki.server)
    dns["hooks.example.test"] = ["127.0.0.1"]
    with WebhookSender(allow_hosts=["hooks.example.test"]) as s:
        result = post(s, server.url("hooks.example.test", scheme="https"))
    assert result.error is not None and result.error.startswith("tls error:")


# The async sender.


def test_async_sender_delivers_concurrently_within_the_per_host_limit(serve):
    server = serve(Reply(200, b"ok", delay=0.02))

    async def main() -> list[SendResult]:
        async with AsyncWebhookSender(
            allow_hosts=LOCAL, require_https=False, max_connections_per_host=4
        ) as s:
            return await asyncio.gather(
                *(s.send(server.url(), b"{}", {"webhook-id": f"e{i}"}) for i in range(50))
            )

    results = asyncio.run(main())
    assert all(r.ok and r.response_snippet == "ok" for r in results)
    assert sorted(seen.headers["webhook-id"] for seen in server.seen) == sorted(
        f"e{i}" for i in range(50)
    )
    assert 1 <= server.connections <= 4


def test_async_sender_refuses_private_names_and_reports_failures(serve, dns):
    dns["hooks.example.test"] = ["10.0.0.1"]
    slow = serve(Reply(delay=1.0))
    gone = serve(Reply(410))

    async def main() -> list[SendResult]:
        async with AsyncWebhookSender(allow_hosts=LOCAL, require_https=False, timeout=0.2) as s:
            return [
                await s.send("http://hooks.example.test/", b"{}", {}),
                await s.send(slow.url(), b"{}", {}),
                await s.send(gone.url(), b"{}", {}),
            ]

    refused, timed_out, gone_result = asyncio.run(main())
    assert refused.error == "refused: hooks.example.test resolves to private address 10.0.0.1"
    assert timed_out.error == "timeout (read)"
    assert gone_result.gone and gone_result.status_code == 410


def test_async_sender_connects_to_the_checked_address(serve, dns):
    checked = serve(Reply(200))
    elsewhere = serve(Reply(200), address=("127.0.0.2", checked.port))
    dns["hooks.example.test"] = ["127.0.0.1", "127.0.0.2"]

    async def main() -> SendResult:
        async with AsyncWebhookSender(allow_hosts=["hooks.example.test"], require_https=False) as s:
            return await s.send(checked.url("hooks.example.test"), b"{}", {})

    assert asyncio.run(main()).ok
    assert dns.lookups == ["hooks.example.test"]
    assert len(checked.seen) == 1 and elsewhere.connections == 0
    assert checked.seen[0].headers["host"] == f"hooks.example.test:{checked.port}"


def test_async_sender_verifies_tls_for_the_original_name_and_keeps_the_connection(serve, dns, pki):
    server = serve(Reply(200, b"secure"), tls=pki.server)
    dns["hooks.example.test"] = ["127.0.0.1"]
    dns["other.example.test"] = ["127.0.0.1"]

    connections: list[int] = []

    async def main() -> list[SendResult]:
        async with AsyncWebhookSender(
            allow_hosts=["hooks.example.test", "other.example.test"], ssl_context=pki.client
        ) as s:
            good = server.url("hooks.example.test", scheme="https")
            results = [await s.send(good, b"{}", {}) for _ in range(3)]
            connections.append(server.connections)
            bad = server.url("other.example.test", scheme="https")
            return [*results, await s.send(bad, b"{}", {})]

    *good, bad = asyncio.run(main())
    assert all(r.ok and r.response_snippet == "secure" for r in good)
    assert pki.sni[:1] == ["hooks.example.test"]
    assert len(server.seen) == 3 and connections == [1], "one kept-alive TLS connection"
    assert bad.error is not None and bad.error.startswith("tls error:")
