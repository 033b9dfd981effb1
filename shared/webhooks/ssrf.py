"""Webhook URL guard: parse strictly, resolve, and refuse any address that is not public."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

import idna

from ftq.shared.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_BLOCKED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignment"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_GLOBAL_UNICAST_V6 = _V6("2000::/3")
_NAT64_V6 = _V6("64:ff9b::/96")
_SIX_TO_FOUR_V6 = _V6("2002::/16")
_BLOCKED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::1/128"), "loopback"),
    (_V6("::/128"), "unspecified"),
    (_V6("::ffff:0:0/96"), "IPv4-mapped"),
    (_V6("::/96"), "IPv4-compatible"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
    (_V6("2001::/32"), "Teredo"),
    (_V6("2001::/23"), "IETF protocol assignment"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
)

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_SAFE_TARGET_CHARS = "!$&'()*+,-./:;=?@_~%"


class InvalidWebhookURL(Unprocessable):
    """A webhook URL refused by the guard; `reason` is the short why, naming the host."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook URL refused: {reason}", param="url", code="invalid_webhook_url")
        self.reason = reason


class UnresolvableHost(InvalidWebhookURL):
    """The URL's host name has no address (possibly a passing DNS failure)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: its parts as they go on the wire and the addresses that passed the check."""

    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        """The Host header value: brackets for IPv6, port only when not the default."""
        host = _bracketed(self.host)
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """`scheme://host:port`, the key for per-host limits."""
        return f"{self.scheme}://{_bracketed(self.host)}:{self.port}"


def check_url(url: str, *, allow_hosts: Iterable[str], require_https: bool) -> list[IPAddress]:
    """The addresses `url` resolves to, all public (or its host allowlisted); else raise."""
    return list(check_target(url, allow_hosts=allow_hosts, require_https=require_https).addresses)


def check_target(url: str, *, allow_hosts: Iterable[str], require_https: bool) -> Target:
    """Parse, resolve and check `url`; raise InvalidWebhookURL naming the host and the reason."""
    scheme, host, port, target = parse_url(url, require_https=require_https)
    literal = _ip_literal(host)
    addresses = (literal,) if literal is not None else tuple(resolve_host(host, port))
    if _normalise_host(host) not in {_normalise_host(entry) for entry in allow_hosts}:
        for address in addresses:
            _refuse_if_not_public(host, address, is_literal=literal is not None)
    return Target(scheme, host, port, target, addresses)


def parse_url(url: str, *, require_https: bool) -> tuple[str, str, int, str]:
    """Split a URL into scheme, ASCII host (no brackets), port and request target; or raise."""
    if any(ch <= " " or ch == "\x7f" or ch == "\\" for ch in url):
        raise InvalidWebhookURL("the URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidWebhookURL(f"the URL is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    allowed = ("https",) if require_https else ("http", "https")
    if scheme not in allowed:
        raise InvalidWebhookURL(f"scheme {scheme or '(none)'!r} is not allowed; use {allowed[-1]}")
    if "@" in parts.netloc:
        raise InvalidWebhookURL("credentials (user:password@) in the URL are not allowed")
    host = _ascii_host(parts.hostname or "", bracketed="[" in parts.netloc)
    port = _port(parts) or DEFAULT_PORTS[scheme]
    target = quote(parts.path or "/", safe=_SAFE_TARGET_CHARS)
    if parts.query:
        target += "?" + quote(parts.query, safe=_SAFE_TARGET_CHARS)
    return scheme, host, port, target


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, in its order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(f"{host} could not be resolved ({exc})") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(f"{host} could not be resolved")
    return addresses


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` is no public unicast address (e.g. "private"), or None if it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_reason(address)
    return _v6_reason(address)


def _v4_reason(address: ipaddress.IPv4Address) -> str | None:
    """The first blocked IPv4 range holding `address`."""
    for network, reason in _BLOCKED_V4:
        if address in network:
            return reason
    return None if address.is_global else "non-public"


def _v6_reason(address: ipaddress.IPv6Address) -> str | None:
    """Refuse IPv6 outside global unicast, and NAT64/6to4 that embed a non-public IPv4."""
    embedded = _embedded_v4(address)
    if embedded is not None:
        inner = _v4_reason(embedded)
        return f"{_tunnel_name(address)} embedding {inner} {embedded}" if inner else None
    for network, reason in _BLOCKED_V6:
        if address in network:
            mapped = address.ipv4_mapped
            inner = _v4_reason(mapped) if mapped is not None else None
            return f"{reason} (embeds {inner} {mapped})" if inner else reason
    return None if address in _GLOBAL_UNICAST_V6 else "reserved"


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address."""
    if address in _NAT64_V6:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _tunnel_name(address: ipaddress.IPv6Address) -> str:
    """The tunnel kind: NAT64 or 6to4."""
    return "NAT64" if address in _NAT64_V6 else "6to4"


def _refuse_if_not_public(host: str, address: IPAddress, *, is_literal: bool) -> None:
    """Raise unless `address` is public."""
    reason = refusal_reason(address)
    if reason is None:
        return
    if is_literal:
        raise InvalidWebhookURL(f"{host} is a {reason} address")
    raise InvalidWebhookURL(f"{host} resolves to {reason} address {address}")


def _ascii_host(raw: str, *, bracketed: bool) -> str:
    """The host lowercased, IDNA-encoded, without a trailing dot; odd IP notations refused."""
    if not raw:
        raise InvalidWebhookURL("the URL has no host")
    if bracketed:
        if "%" in raw:
            raise InvalidWebhookURL(f"{raw!r}: IPv6 zone identifiers are not allowed")
        try:
            return str(ipaddress.IPv6Address(raw))
        except ValueError:
            raise InvalidWebhookURL(f"{raw!r} is not a valid IPv6 address") from None
    try:
        host = idna.encode(raw, uts46=True).decode("ascii") if not raw.isascii() else raw.lower()
    except UnicodeError:
        raise InvalidWebhookURL(f"{raw!r} is not a valid host name") from None
    host = host.removesuffix(".")
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        return _dotted_quad(host)
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidWebhookURL(f"{raw!r} is not a valid host name")
    return host


def _dotted_quad(host: str) -> str:
    """`host` if it is a canonical IPv4 address; decimal, octal, hex or short forms are refused."""
    # A numeric last label makes the host an IPv4 address to browsers and to inet_aton, which
    # reads 2130706433, 0177.0.0.1 and 0x7f.1 as 127.0.0.1: only plain dotted quads pass.
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        raise InvalidWebhookURL(
            f"{host} is an IP address in a non-standard notation; write it as a dotted quad"
        ) from None


def _port(parts: SplitResult) -> int | None:
    """The explicit port of the URL, if any; 0 and malformed ports are refused."""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidWebhookURL(f"invalid port in {parts.netloc!r}")
    return port


def _bracketed(host: str) -> str:
    """IPv6 addresses in brackets, as URLs and Host headers write them."""
    return f"[{host}]" if ":" in host else host


def _ip_literal(host: str) -> IPAddress | None:
    """`host` as an IP address when it is one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normalise_host(entry: str) -> str:
    """An allowlist entry or host in comparable form."""
    entry = entry.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")
    literal = _ip_literal(entry)
    return str(literal) if literal is not None else entry
