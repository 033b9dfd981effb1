"""SSRF-safe webhook sending over pooled keep-alive connections, sync and async.

Why our own small transport on httpcore rather than a library (PyPI checked in November 2026):

- `advocate` 1.0.0 is requests-based, pins urllib3<2 and has had no release since July 2020.
- `httpx-secure` 2.0.0 is maintained, but async only (Celery's thread pools need a sync sender),
  installs itself by swapping private attributes of httpx/httpcore, and resolves and judges
  addresses with its own policy, so the guard used at registration (`ssrf.check_url`: allowlist,
  NAT64/6to4 rules, error messages) and the one at send time would disagree.
- `safehttpx` 0.2.0 is an async GET helper on the `httpx2` fork, not a pooled POST sender.
- `ssrfguard` 0.4.1 (sync and async) uses the very seam chosen here (an httpcore network
  backend), but it is a one-maintainer 0.x with no independent audit and its own policy engine;
  `drawbridge` 0.1.2 is alpha.

httpcore, which httpx already installs, documents a pluggable network backend. Ours connects
only to the addresses `ssrf.check_target` approved for this very send (handed over in a context
variable) and never resolves the name itself, so no DNS rebinding window opens; httpcore still
takes the Host header, TLS SNI and certificate verification from the URL's host name. httpcore
follows no redirects and reads no proxy settings from the environment. The sync sender uses
httpcore's thread-safe pool; the async one (the delivery path) keeps its own idle keep-alive
connections per origin (see `_AsyncConnections`). Every send re-resolves and re-checks its URL, so a
host now pointing inward is refused before any pooled connection is reused; a pooled
connection goes to the address that was checked when it was opened. Each send also has a total
time budget, since per-operation timeouts let a receiver trickling bytes hold a worker for
hours. httpx on top would add only what must stay off here
(redirects, cookies, environment proxies), and its transports accept a network backend only by
replacing their private `_pool`.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import ssl
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpcore

from ftq.shared.webhooks.ssrf import (
    InvalidWebhookURL,
    IPAddress,
    Target,
    UnresolvableHost,
    check_target,
)

log = logging.getLogger(__name__)

SNIPPET_CHARS = 500
_SNIPPET_BYTES = 4 * SNIPPET_CHARS
_MAX_BODY_BYTES = 64 * 1024
_SKIPPED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
_NETWORK_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    OSError,
)


@dataclass(frozen=True)
class SendResult:
    """The outcome of one delivery attempt; `error` is None exactly when `ok`."""

    status_code: int | None
    ok: bool
    duration_ms: float
    error: str | None
    response_snippet: str = ""
    retry_after_seconds: float | None = None
    gone: bool = False
    # No request went out: every connection to the origin stayed busy (not a receiver failure).
    deferred: bool = False


@dataclass(frozen=True)
class _Pin:
    """The checked addresses of the send in progress and the deadline of its time budget."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    deadline: float


_PIN: ContextVar[_Pin | None] = ContextVar("ftq_webhook_pin", default=None)


def _pin_for(host: str, port: int) -> _Pin:
    """The checked addresses for a connection httpcore is about to open; fail closed."""
    pin = _PIN.get()
    if pin is None or (pin.host, pin.port) != (host, port):
        raise httpcore.ConnectError(f"no checked address for {host}:{port}")
    return pin


def _budget(timeout: float | None, expired: type[Exception]) -> float | None:
    """The smaller of an operation's timeout and what is left of the send's total budget."""
    pin = _PIN.get()
    if pin is None:
        return timeout
    left = pin.deadline - time.monotonic()
    if left <= 0:
        raise expired("total time limit")
    return left if timeout is None else min(timeout, left)


class _BudgetStream(httpcore.NetworkStream):
    """A socket stream whose every operation also fits the current send's total budget."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read within the budget."""
        return self._stream.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write within the budget."""
        self._stream.write(buffer, _budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        """Close the socket."""
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """TLS handshake (SNI and certificate check for `server_hostname`) within the budget."""
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return _BudgetStream(self._stream.start_tls(ssl_context, server_hostname, budget))

    def get_extra_info(self, info: str) -> Any:
        """Pass through (httpcore asks whether idle connections are still usable)."""
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens connections to the checked addresses only, trying them in resolver order."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """A stream to the first checked address that accepts."""
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in _pin_for(host, port).addresses:
            budget = _budget(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._inner.connect_tcp(
                    str(address), port, budget, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
            else:
                return _BudgetStream(stream)
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Never used for webhooks."""
        raise httpcore.ConnectError("unix sockets are not used for webhooks")

    def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's retry back-off)."""
        time.sleep(seconds)


class _AsyncBudgetStream(httpcore.AsyncNetworkStream):
    """The async twin of `_BudgetStream`."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read within the budget."""
        return await self._stream.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write within the budget."""
        await self._stream.write(buffer, _budget(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        """Close the socket."""
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """TLS handshake (SNI and certificate check for `server_hostname`) within the budget."""
        budget = _budget(timeout, httpcore.ConnectTimeout)
        stream = await self._stream.start_tls(ssl_context, server_hostname, budget)
        return _AsyncBudgetStream(stream)

    def get_extra_info(self, info: str) -> Any:
        """Pass through (httpcore asks whether idle connections are still usable)."""
        return self._stream.get_extra_info(info)


class _AsyncPinnedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of `_PinnedBackend` (asyncio or trio through anyio)."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A stream to the first checked address that accepts."""
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in _pin_for(host, port).addresses:
            budget = _budget(timeout, httpcore.ConnectTimeout)
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, budget, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
            else:
                return _AsyncBudgetStream(stream)
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never used for webhooks."""
        raise httpcore.ConnectError("unix sockets are not used for webhooks")

    async def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's retry back-off)."""
        await anyio.sleep(seconds)


@dataclass
class _Slot:
    """A per-origin semaphore and how many sends use or wait for it."""

    semaphore: Any
    users: int = 0


@dataclass
class _HostSlots:
    """At most `limit` concurrent sends per origin, across threads; idle origins are forgotten."""

    limit: int
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: dict[str, _Slot] = field(default_factory=dict)

    @contextmanager
    def hold(self, origin: str, timeout: float) -> Iterator[bool]:
        """Hold a slot for `origin`; yields False if none freed up within `timeout`."""
        with self._lock:
            slot = self._slots.setdefault(origin, _Slot(threading.BoundedSemaphore(self.limit)))
            slot.users += 1
        acquired = slot.semaphore.acquire(timeout=timeout)
        try:
            yield acquired
        finally:
            if acquired:
                slot.semaphore.release()
            with self._lock:
                slot.users -= 1
                if slot.users == 0:
                    del self._slots[origin]


@dataclass
class _AsyncHostSlots:
    """At most `limit` concurrent sends per origin within one event loop."""

    limit: int
    _slots: dict[str, _Slot] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, origin: str, timeout: float) -> AsyncIterator[bool]:
        """Hold a slot for `origin`; yields False if none freed up within `timeout`."""
        slot = self._slots.setdefault(origin, _Slot(anyio.Semaphore(self.limit)))
        slot.users += 1
        acquired = False
        try:
            with anyio.move_on_after(timeout):
                await slot.semaphore.acquire()
                acquired = True
            yield acquired
        finally:
            if acquired:
                slot.semaphore.release()
            slot.users -= 1
            if slot.users == 0:
                del self._slots[origin]


class _AsyncConnections:
    """Idle keep-alive connections per origin, each lent to one send at a time.

    httpcore's AsyncConnectionPool rescans every connection for every request; at a few
    hundred sends a second that scan cost ten times the HTTP exchange itself. The per-origin
    slots already bound concurrency, so a stack of idle connections per origin is all we need.
    """

    def __init__(
        self, ssl_context: ssl.SSLContext | None, keepalive_expiry: float, max_idle: int
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_idle
        self._backend = _AsyncPinnedBackend()
        self._idle: dict[str, list[httpcore.AsyncHTTPConnection]] = {}
        self._idle_count = 0

    async def acquire(self, target: Target) -> httpcore.AsyncHTTPConnection:
        """An idle, still usable connection to the origin, or a new (unconnected) one."""
        idle = self._idle.get(target.origin, [])
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        origin = httpcore.Origin(target.scheme.encode(), target.host.encode(), target.port)
        return httpcore.AsyncHTTPConnection(
            origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            network_backend=self._backend,
        )

    async def release(self, origin: str, connection: httpcore.AsyncHTTPConnection) -> None:
        """Keep a connection whose exchange ended cleanly; close any other."""
        if not connection.is_idle() or connection.is_closed():
            await connection.aclose()
            return
        if self._idle_count >= self._max_idle:
            await self._close_expired()
        if self._idle_count >= self._max_idle:
            await connection.aclose()
            return
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1

    async def _close_expired(self) -> None:
        """Drop idle connections that timed out or that the server closed."""
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.is_available() and not c.has_expired()]
            for connection in idle:
                if connection not in keep:
                    await connection.aclose()
            self._idle_count -= len(idle) - len(keep)
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]

    async def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for connection in idle:
                await connection.aclose()
        self._idle.clear()
        self._idle_count = 0


@dataclass(frozen=True)
class _Options:
    """What both senders share."""

    timeout: float
    total_timeout: float
    allow_hosts: tuple[str, ...]
    require_https: bool

    def check(self, url: str) -> Target:
        """Resolve and check `url` now."""
        return check_target(url, allow_hosts=self.allow_hosts, require_https=self.require_https)

    def pin(self, target: Target) -> _Pin:
        """The connection pin and time budget for one send to `target`."""
        deadline = time.monotonic() + self.total_timeout
        return _Pin(target.host, target.port, target.addresses, deadline)

    def request(
        self, target: Target, body: bytes, headers: Mapping[str, str]
    ) -> tuple[httpcore.URL, list[tuple[bytes, bytes]], dict[str, Any]]:
        """URL, headers and extensions (timeouts) of the POST to `target`."""
        url = httpcore.URL(
            scheme=target.scheme.encode(),
            host=target.host.encode(),
            port=target.port,
            target=target.target.encode(),
        )
        wire_headers = [
            (b"Host", target.host_header.encode("ascii")),
            (b"Content-Length", str(len(body)).encode("ascii")),
        ]
        wire_headers += [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
            if name.lower() not in _SKIPPED_HEADERS
        ]
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.timeout)
        return url, wire_headers, {"timeout": timeouts}


class WebhookSender:
    """A long-lived, thread-safe sender: check the URL, connect to the checked address, POST."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        total_timeout: float = 30.0,
        allow_hosts: Iterable[str] = (),
        require_https: bool = True,
        max_connections: int = 100,
        max_connections_per_host: int = 10,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._options = _Options(timeout, total_timeout, tuple(allow_hosts), require_https)
        self._slots = _HostSlots(max_connections_per_host)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            network_backend=_PinnedBackend(),
        )

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` to `url`; network problems come back as a failed result, never raised."""
        started = time.perf_counter()
        try:
            target = self._options.check(url)
        except InvalidWebhookURL as exc:
            return _failure(started, _refusal(exc))
        with self._slots.hold(target.origin, self._options.timeout) as acquired:
            if not acquired:
                return _busy(started, target.origin)
            return self._post(target, body, headers, started)

    def _post(
        self, target: Target, body: bytes, headers: Mapping[str, str], started: float
    ) -> SendResult:
        """The exchange itself, connected to the checked addresses only."""
        url, wire_headers, extensions = self._options.request(target, body, headers)
        pin = self._options.pin(target)
        token = _PIN.set(pin)
        try:
            with self._pool.stream(
                "POST", url, headers=wire_headers, content=body, extensions=extensions
            ) as response:
                head = _read_head(response.iter_stream())
                return _response_result(response.status, response.headers, head, started)
        except _NETWORK_ERRORS as exc:
            return _failure(started, describe_error(exc, pin.deadline))
        finally:
            _PIN.reset(token)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncWebhookSender:
    """The async twin of `WebhookSender`, for many concurrent deliveries in one event loop."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        total_timeout: float = 30.0,
        allow_hosts: Iterable[str] = (),
        require_https: bool = True,
        max_connections: int = 100,
        max_connections_per_host: int = 10,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._options = _Options(timeout, total_timeout, tuple(allow_hosts), require_https)
        self._slots = _AsyncHostSlots(max_connections_per_host)
        self._connections = _AsyncConnections(ssl_context, keepalive_expiry, max_connections)

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` to `url`; any failure comes back as a failed result, never raised."""
        started = time.perf_counter()
        try:
            return await self._send(url, body, headers, started)
        except Exception as exc:
            # One receiver's odd answer must not lose the results of the rest of its batch.
            log.exception("webhook send to an endpoint failed unexpectedly")
            return _failure(started, f"internal error ({type(exc).__name__})")

    async def _send(
        self, url: str, body: bytes, headers: Mapping[str, str], started: float
    ) -> SendResult:
        """The checked, slot-bounded send that `send` guards."""
        try:
            target = await self._check(url)
        except InvalidWebhookURL as exc:
            return _failure(started, _refusal(exc))
        async with self._slots.hold(target.origin, self._options.timeout) as acquired:
            if not acquired:
                return _busy(started, target.origin)
            return await self._post(target, body, headers, started)

    async def _check(self, url: str) -> Target:
        """Check `url`; a host name's lookup blocks, so it runs in a worker thread."""
        if _names_an_ip(url):
            return self._options.check(url)
        return await anyio.to_thread.run_sync(partial(self._options.check, url))

    async def _post(
        self, target: Target, body: bytes, headers: Mapping[str, str], started: float
    ) -> SendResult:
        """The exchange itself, connected to the checked addresses only."""
        url, wire_headers, extensions = self._options.request(target, body, headers)
        request = httpcore.Request(
            "POST", url, headers=wire_headers, content=body, extensions=extensions
        )
        pin = self._options.pin(target)
        token = _PIN.set(pin)
        connection = await self._connections.acquire(target)
        try:
            response = await connection.handle_async_request(request)
            try:
                head = await _aread_head(response.aiter_stream())
            finally:
                await response.aclose()
            return _response_result(response.status, response.headers, head, started)
        except _NETWORK_ERRORS as exc:
            return _failure(started, describe_error(exc, pin.deadline))
        finally:
            await self._connections.release(target.origin, connection)
            _PIN.reset(token)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._connections.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _names_an_ip(url: str) -> bool:
    """Whether the URL's host is an IP address, so checking it needs no lookup."""
    try:
        host = urlsplit(url).hostname or ""
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _read_head(chunks: Iterable[bytes]) -> bytes:
    """The body up to 64 KiB; reading a small body to its end keeps the connection reusable."""
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) >= _MAX_BODY_BYTES:
            break
    return bytes(data)


async def _aread_head(chunks: AsyncIterable[bytes]) -> bytes:
    """The async twin of `_read_head`."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) >= _MAX_BODY_BYTES:
            break
    return bytes(data)


def _response_result(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, started: float
) -> SendResult:
    """The result for a received response: 2xx is ok; 3xx, 4xx and 5xx are failures."""
    ok = 200 <= status < 300
    return SendResult(
        status_code=status,
        ok=ok,
        duration_ms=_elapsed_ms(started),
        error=None if ok else _status_error(status, _header(headers, b"location")),
        response_snippet=snippet(body),
        retry_after_seconds=parse_retry_after(_header(headers, b"retry-after")),
        gone=status == 410,
    )


def _status_error(status: int, location: str | None) -> str:
    """Why a non-2xx response failed."""
    if 300 <= status < 400:
        where = f" to {location[:300]}" if location else ""
        return f"redirect{where} not followed (HTTP {status})"
    return f"HTTP {status}"


def snippet(body: bytes) -> str:
    """The first 500 characters of a response body, decoded safely."""
    text = body[:_SNIPPET_BYTES].decode("utf-8", errors="replace")[:SNIPPET_CHARS]
    return text.replace("\x00", "\ufffd")  # Postgres text columns refuse NUL


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delay-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        # A date with an absurd year overflows a C long inside the parser.
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def describe_error(exc: BaseException, deadline: float = math.inf) -> str:
    """A short, stable description of a network failure for the attempt log."""
    if isinstance(exc, httpcore.TimeoutException):
        # The last operation's timeout was cut to what was left of the budget.
        spent = time.monotonic() >= deadline - 0.01
        return "timeout (total time limit)" if spent else f"timeout ({_timeout_phase(exc)})"
    cause = _root_cause(exc)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"tls error: {cause.verify_message or cause}"
    if isinstance(cause, ssl.SSLError):
        return f"tls error: {cause.reason or cause}"
    if isinstance(exc, httpcore.ConnectError):
        return f"connection failed: {str(exc) or type(cause).__name__}"
    if isinstance(exc, httpcore.ProtocolError):
        return f"protocol error: {str(exc) or type(exc).__name__}"
    return f"connection error: {str(exc) or type(cause).__name__}"


def _timeout_phase(exc: httpcore.TimeoutException) -> str:
    """Which phase timed out."""
    phases = {
        httpcore.ConnectTimeout: "connect",
        httpcore.ReadTimeout: "read",
        httpcore.WriteTimeout: "write",
        httpcore.PoolTimeout: "pool",
    }
    return phases.get(type(exc), "network")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception httpcore wrapped."""
    for _ in range(16):  # chains are short; the bound only guards against a cycle
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def _refusal(exc: InvalidWebhookURL) -> str:
    """The attempt-log error for a URL the guard refused at send time."""
    return (
        f"dns error: {exc.reason}"
        if isinstance(exc, UnresolvableHost)
        else f"refused: {exc.reason}"
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of a response header, decoded as Latin-1."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _failure(started: float, error: str) -> SendResult:
    """A result without a response."""
    return SendResult(status_code=None, ok=False, duration_ms=_elapsed_ms(started), error=error)


def _busy(started: float, origin: str) -> SendResult:
    """A send that never started because the origin's connections stayed busy."""
    error = f"timeout waiting for a free connection to {origin}"
    return SendResult(None, False, _elapsed_ms(started), error, deferred=True)


def _elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a perf_counter reading)."""
    return round((time.perf_counter() - started) * 1000, 3)
