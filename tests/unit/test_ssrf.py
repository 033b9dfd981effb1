"""The webhook URL guard: what it refuses, what it lets through, and how it says why."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from ftq.shared.errors import Unprocessable
from ftq.shared.webhooks import ssrf
from ftq.shared.webhooks.ssrf import UnresolvableHost, check_target, check_url, refusal_reason


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver table for `ssrf.resolve_host`; unknown names do not resolve."""
    table: dict[str, list[str]] = {}

    def fake_resolve(host: str, port: int):
        if host not in table:
            raise UnresolvableHost(f"{host} could not be resolved")
        return [ipaddress.ip_address(a) for a in table[host]]

    monkeypatch.setattr(ssrf, "resolve_host", fake_resolve)
    return table


def refused(url: str, **kwargs) -> Unprocessable:
    options = {"allow_hosts": [], "require_https": False, **kwargs}
    with pytest.raises(Unprocessable) as caught:
        check_url(url, **options)
    error = caught.value
    assert (error.status_code, error.code, error.param) == (422, "invalid_webhook_url", "url")
    return error


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.0.0.1./hook", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1:8080/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://0.0.0.0/", "this network"),
        ("http://224.0.0.1/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://192.0.2.10/", "documentation"),
        ("http://198.18.0.1/", "benchmarking"),
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped (embeds loopback 127.0.0.1)"),
        ("http://[::ffff:a00:1]/", "IPv4-mapped (embeds private 10.0.0.1)"),
        ("http://[::ffff:8.8.8.8]/", "IPv4-mapped"),
        ("http://[::127.0.0.1]/", "IPv4-compatible"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[2001:db8::1]/", "documentation"),
        ("http://[2001::1]/", "Teredo"),
        ("http://[64:ff9b::a00:1]/", "NAT64 embedding private 10.0.0.1"),
        ("http://[64:ff9b::7f00:1]/", "NAT64 embedding loopback 127.0.0.1"),
        (
            "http://[2002:a9fe:a9fe::1]/",
            "6to4 embedding link-local (cloud metadata) 169.254.169.254",
        ),
        ("http://[100::1]/", "reserved"),
    ],
)
def test_non_public_ip_literals_are_refused(url, why):
    error = refused(url)
    assert why in error.message
    assert "webhook URL refused" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.0.0.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://017700000001/",
        "http://8.8.8.08/",
        "http://1.2.3.4.5/",
    ],
)
def test_odd_ip_notations_are_refused(url):
    assert "non-standard notation" in refused(url).message


def test_fullwidth_digits_normalise_to_a_literal_and_are_checked():
    assert "loopback" in refused("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/").message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://8.8.8.8/", "scheme 'ftp'"),
        ("8.8.8.8/hook", "scheme"),
        ("http://user:pw@8.8.8.8/", "credentials"),
        ("http://@8.8.8.8/", "credentials"),
        ("http:///hook", "no host"),
        ("http://8.8.8.8:0/", "invalid port"),
        ("http://8.8.8.8:99999/", "invalid port"),
        ("http://8.8.8.8:http/", "invalid port"),
        ("http://8.8.8.8\\@127.0.0.1/", "backslashes"),
        ("http://8.8.8.8/ hook", "whitespace"),
        ("http://example.com\t.evil/", "whitespace"),
        ("http://127%2e0%2e0%2e1/", "not a valid host name"),
        ("http://exa mple.com/", "whitespace"),
        ("http://[fe80::1%25eth0]/", "zone identifiers"),
        ("http://[not-v6]/", "not valid"),
        ("http://[::1/", "not valid"),
    ],
)
def test_malformed_urls_are_refused(url, why):
    assert why in refused(url).message


def test_https_is_required_when_asked():
    assert "use https" in refused("http://8.8.8.8/", require_https=True).message
    assert check_url("https://8.8.8.8/", allow_hosts=[], require_https=True) == [
        ipaddress.ip_address("8.8.8.8")
    ]


def test_public_literals_pass():
    public = ["8.8.8.8", "[2606:4700:4700::1111]", "[64:ff9b::808:808]", "[2002:808:808::1]"]
    for host in public:
        addresses = check_url(f"https://{host}/hook", allow_hosts=[], require_https=True)
        assert str(addresses[0]) == host.strip("[]")


def test_hostname_resolving_to_a_private_address_is_refused(dns):
    dns["hooks.example.com"] = ["10.0.0.1"]
    error = refused("https://hooks.example.com/in")
    assert "hooks.example.com resolves to private address 10.0.0.1" in error.message


def test_any_private_answer_among_public_ones_is_refused(dns):
    dns["mixed.example.com"] = ["93.184.216.34", "2606:2800:220:1::1", "169.254.169.254"]
    assert "169.254.169.254" in refused("https://mixed.example.com/").message


def test_hostname_with_only_public_answers_passes_with_all_of_them(dns):
    dns["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1::1"]
    addresses = check_url("https://HOOKS.example.com./x", allow_hosts=[], require_https=True)
    assert [str(a) for a in addresses] == ["93.184.216.34", "2606:2800:220:1::1"]


def test_unresolvable_host_is_a_clear_error(dns):
    error = refused("https://nowhere.example.com/")
    assert isinstance(error, UnresolvableHost)
    assert "nowhere.example.com could not be resolved" in error.message


def test_allowlisted_hosts_skip_the_address_check(dns):
    dns["localhost"] = ["127.0.0.1", "::1"]
    assert check_url("http://127.0.0.1:8000/", allow_hosts=["127.0.0.1"], require_https=False)
    assert check_url("http://[::1]:8000/", allow_hosts=["::1"], require_https=False)
    assert check_url("http://[::1]/", allow_hosts=["[::1]"], require_https=False)
    assert len(check_url("http://LOCALHOST/", allow_hosts=["localhost"], require_https=False)) == 2


def test_allowlist_is_exact(dns):
    dns["localhost"] = ["127.0.0.1"]
    refused("http://127.0.0.2/", allow_hosts=["127.0.0.1"])
    refused("http://localhost/", allow_hosts=["127.0.0.1"])
    refused("http://0177.0.0.1/", allow_hosts=["127.0.0.1"])


def test_allowlist_does_not_lift_the_https_requirement():
    refused("http://127.0.0.1/", allow_hosts=["127.0.0.1"], require_https=True)


def test_target_keeps_what_goes_on_the_wire():
    target = check_target(
        "https://[2606:4700:4700::1111]:8443/a%20b/\u00e9?x=1&y=\u00e9#frag",
        allow_hosts=[],
        require_https=True,
    )
    assert (target.scheme, target.host, target.port) == ("https", "2606:4700:4700::1111", 8443)
    assert target.target == "/a%20b/%C3%A9?x=1&y=%C3%A9"
    assert target.host_header == "[2606:4700:4700::1111]:8443"
    assert check_target("https://8.8.8.8", allow_hosts=[], require_https=True).target == "/"
    assert check_target("https://8.8.8.8:443/", allow_hosts=[], require_https=True).host_header == (
        "8.8.8.8"
    )


def test_idn_hosts_are_punycoded(dns):
    dns["xn--bcher-kva.example"] = ["93.184.216.34"]
    target = check_target("https://b\u00fccher.example/", allow_hosts=[], require_https=True)
    assert target.host == "xn--bcher-kva.example"


def test_real_resolver_is_used_by_default(monkeypatch):
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert "resolves to private address 10.1.2.3" in refused("https://intranet.example/").message
    assert calls == [("intranet.example", 443)]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("93.184.216.34", None),
        ("1.1.1.1", None),
        ("2a00:1450:4001::200e", None),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fd12:3456::1", "unique-local"),
    ],
)
def test_refusal_reason(address, reason):
    assert refusal_reason(ipaddress.ip_address(address)) == reason
