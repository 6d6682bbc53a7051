"""The SSRF guard: URL shape, numeric host forms, address classes, resolution."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

import pytest

from ingest_ray.fetch.errors import FetchFailedError, FetchNotFoundError, FetchRefusedError
from ingest_ray.fetch.guard import (
    address_problem,
    parse_ipv4_like_inet_aton,
    parse_target,
    resolve_and_vet,
    system_resolver,
)
from tests.unit.fetch.support import FakeResolver

ip = ipaddress.ip_address

# --- numeric hosts are read exactly as the resolver reads them ---------------------------------

NUMERIC_FORMS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0x7F.0x0.0X0.0x1",
    "0x7f000001",
    "017700000001",
    "0x7f.1",
    "00000000177.0.0.1",
    "0",
    "0x0",
    "1.16777215",
    "1.16777216",
    "4294967295",
    "4294967296",
    "256.0.0.1",
    "1.2.3.256",
    "08.0.0.1",
    "0x",
    "0xg.0.0.1",
    "1.2.3.4.5",
    "1..2.3",
    "",
    "-1.0.0.1",
    "+1.0.0.1",
    "1_0.0.0.1",
]


@pytest.mark.parametrize("form", NUMERIC_FORMS)
def test_parse_ipv4_agrees_with_inet_aton(form: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(form))
    except OSError:
        expected = None
    assert parse_ipv4_like_inet_aton(form) == expected


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://0x7f.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://127.0.0.1./", "127.0.0.1"),
        ("http://0/", "0.0.0.0"),
        ("http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/", "127.0.0.1"),
        ("http://127\u30020\u30020\u30021/", "127.0.0.1"),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", "::ffff:127.0.0.1"),
    ],
)
def test_parse_target_normalises_numeric_hosts(url: str, address: str) -> None:
    target = parse_target(url)
    assert target.address == ip(address)
    assert target.host == str(ip(address))


def test_parse_target_refuses_a_numeric_looking_host_that_is_no_address() -> None:
    for url in ("http://256.0.0.1/", "http://1.2.3.4.5/", "http://0x/", "http://08.0.0.1/"):
        with pytest.raises(FetchRefusedError, match="malformed numeric host"):
            parse_target(url)


# --- URL shape -------------------------------------------------------------------------------


def test_parse_target_splits_and_normalises_a_url() -> None:
    target = parse_target("HTTPS://Pdfs.Example.ORG:443/a b/ü.pdf?x=1&y=[2]#page=3")
    assert (target.scheme, target.host, target.port) == ("https", "pdfs.example.org", 443)
    assert target.path == "/a%20b/%C3%BC.pdf?x=1&y=[2]"
    assert target.address is None
    assert target.url == "https://pdfs.example.org/a%20b/%C3%BC.pdf?x=1&y=[2]"


def test_parse_target_encodes_international_host_names_as_idna() -> None:
    target = parse_target("http://bücher.example:8080")
    assert target.host == "xn--bcher-kva.example"
    assert target.authority == "xn--bcher-kva.example:8080"
    assert target.path == "/"


def test_parse_target_brackets_ipv6_in_the_authority() -> None:
    target = parse_target("http://[2606:4700:4700::1111]:8443/x")
    assert target.host == "2606:4700:4700::1111"
    assert target.authority == "[2606:4700:4700::1111]:8443"


def test_parse_target_honours_narrowed_schemes() -> None:
    with pytest.raises(FetchRefusedError, match="scheme 'http'"):
        parse_target("http://example.org/a.pdf", allowed_schemes=frozenset({"https"}))
    assert parse_target("https://example.org/a.pdf").scheme == "https"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org:99999/",
        "http://example.org:abc/",
        "http://example.org:0/",
        "http://exa mple.org/",
        "http://a..b.org/",
        "http://" + "a" * 64 + ".org/",
        "http://under%5fscore.org/",
        "http://example.org/" + "a" * 9000,
        "http://example.org/\u200bx",
    ],
)
def test_parse_target_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(FetchRefusedError):
        parse_target(url)


# --- address classes -------------------------------------------------------------------------

FORBIDDEN_ADDRESSES = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.170",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::8.8.8.8",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "ff02::1",
    "100::1",
]


@pytest.mark.parametrize("address", FORBIDDEN_ADDRESSES)
def test_address_problem_refuses_non_global_addresses(address: str) -> None:
    assert address_problem(ip(address)) is not None


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_address_problem_allows_global_unicast(address: str) -> None:
    assert address_problem(ip(address)) is None


def test_address_problem_explains_embedded_ipv4() -> None:
    assert "169.254.169.254" in (address_problem(ip("64:ff9b::a9fe:a9fe")) or "")
    assert "loopback" in (address_problem(ip("::ffff:127.0.0.1")) or "")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_address_problem_allow_loopback_admits_only_loopback(address: str) -> None:
    assert address_problem(ip(address), allow_loopback=True) is None
    assert address_problem(ip(address), allow_loopback=False) == "loopback"


@pytest.mark.parametrize(
    "address",
    ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "::127.0.0.1", "0.0.0.0", "::"],
)
def test_address_problem_allow_loopback_still_refuses_disguised_loopback(address: str) -> None:
    assert address_problem(ip(address), allow_loopback=True) is not None


# --- resolution ------------------------------------------------------------------------------


def test_resolve_and_vet_returns_every_address_once_in_order() -> None:
    resolver = FakeResolver({"cdn.test": [["93.184.216.34", "2606:4700::1", "93.184.216.34"]]})
    target = parse_target("https://cdn.test/a.pdf")
    addresses = asyncio.run(resolve_and_vet(target, resolver, allow_loopback=False))
    assert addresses == (ip("93.184.216.34"), ip("2606:4700::1"))
    assert resolver.calls == [("cdn.test", 443)]


def test_resolve_and_vet_refuses_when_any_address_is_forbidden() -> None:
    resolver = FakeResolver({"mixed.test": [["93.184.216.34", "10.1.2.3"]]})
    with pytest.raises(FetchRefusedError, match=re.escape("10.1.2.3")):
        asyncio.run(
            resolve_and_vet(parse_target("http://mixed.test/"), resolver, allow_loopback=False)
        )


def test_resolve_and_vet_never_asks_the_resolver_about_literals() -> None:
    resolver = FakeResolver()
    target = parse_target("http://93.184.216.34/x.pdf")
    assert asyncio.run(resolve_and_vet(target, resolver, allow_loopback=False)) == (
        ip("93.184.216.34"),
    )
    assert resolver.calls == []


def test_resolve_and_vet_maps_unknown_host_to_not_found() -> None:
    with pytest.raises(FetchNotFoundError):
        asyncio.run(
            resolve_and_vet(parse_target("http://nx.test/"), FakeResolver(), allow_loopback=False)
        )


def test_resolve_and_vet_maps_temporary_dns_failure_to_retryable() -> None:
    async def flaky(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(FetchFailedError) as caught:
        asyncio.run(resolve_and_vet(parse_target("http://x.test/"), flaky, allow_loopback=False))
    assert caught.value.retryable


def test_resolve_and_vet_refuses_a_resolver_answer_that_is_no_address() -> None:
    resolver = FakeResolver({"odd.test": [["not-an-ip"]]})
    with pytest.raises(FetchRefusedError):
        asyncio.run(
            resolve_and_vet(parse_target("http://odd.test/"), resolver, allow_loopback=False)
        )


def test_system_resolver_reads_numeric_hosts_without_dns() -> None:
    assert asyncio.run(system_resolver("127.0.0.1", 80)) == ["127.0.0.1"]
