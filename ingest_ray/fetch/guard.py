"""The SSRF guard: which URLs, and which network addresses, a fetch may ever touch.

URLs come from outside (OpenAlex, Unpaywall, CORE, users), so a hostile one must not reach cloud
metadata, the broker, Redis or anything else on our networks. :func:`parse_target` checks the
URL's shape (http/https, no credentials, a well-formed host; numeric hosts are normalised the way
``inet_aton`` reads them, so ``http://0x7f.1/`` is seen as 127.0.0.1); :func:`resolve_and_vet`
resolves the host and refuses when ANY of its addresses is not globally routable. The fetcher then
connects to exactly those vetted addresses (see :mod:`ingest_ray.fetch.pinning`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from ingest_ray.fetch.errors import FetchFailedError, FetchNotFoundError, FetchRefusedError
from ingest_ray.fetch.settings import SUPPORTED_SCHEMES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses as text``; the default asks the system resolver (getaddrinfo).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
MAX_URL_LENGTH: Final = 8192

_V4, _V6 = ipaddress.IPv4Network, ipaddress.IPv6Network
_LOOPBACK_V4: Final = _V4("127.0.0.0/8")
_LOOPBACK_V6: Final = ipaddress.IPv6Address("::1")
_V4_FORBIDDEN: Final = (
    (_V4("0.0.0.0/8"), "unspecified ('this network')"),
    (_V4("10.0.0.0/8"), "private (RFC 1918)"),
    (_V4("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"),
    (_V4("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_V4("172.16.0.0/12"), "private (RFC 1918)"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private (RFC 1918)"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved / broadcast"),
)
_NAT64: Final = _V6("64:ff9b::/96")
_V4_COMPATIBLE: Final = _V6("::/96")
_V6_FORBIDDEN: Final = (
    (_V6("::ffff:0:0/96"), "IPv4-mapped"),
    (_V4_COMPATIBLE, "IPv4-compatible (deprecated)"),
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard-only"),
    (_V6("2001::/32"), "Teredo tunnel"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local (deprecated)"),
    (_V6("ff00::/8"), "multicast"),
)

_NUMERIC_LABEL: Final = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII)
_DEC: Final = re.compile(r"[1-9][0-9]*|0", re.ASCII)
_OCT: Final = re.compile(r"0[0-7]+", re.ASCII)
_HEX: Final = re.compile(r"0x[0-9a-f]+", re.ASCII)
_HOST_LABEL: Final = re.compile(r"[a-z0-9_-]{1,63}", re.ASCII)
#: kept as they are in the request target; everything else outside ASCII is percent-encoded
_TARGET_SAFE: Final = "/?&=:;@!$'()*+,%[]"


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the shape checks, split into the pieces the request is built from."""

    scheme: str
    #: ASCII host name, or the canonical text of an IP address (no brackets)
    host: str
    port: int
    #: the request target: path and query, ASCII, no fragment
    path: str
    #: the address when the host is an IP literal (then no resolver is asked)
    address: IPAddress | None = None

    @property
    def authority(self) -> str:
        """``host[:port]`` as sent in the Host header (the port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The normalised URL: what is requested, and the base for relative redirects."""
        return f"{self.scheme}://{self.authority}{self.path}"


def parse_target(url: str, *, allowed_schemes: frozenset[str] = SUPPORTED_SCHEMES) -> Target:
    """Check a URL's shape and split it; raise :class:`FetchRefusedError` when it is unsafe."""
    # a literal space is harmless once encoded (in a host it then fails as percent-encoded)
    url = url.strip(" ").replace(" ", "%20")
    _check_characters(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refused(url, f"malformed URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in allowed_schemes:
        raise _refused(url, f"scheme {scheme or '(none)'!r} is not allowed")
    if "@" in parts.netloc:
        raise _refused(url, "credentials in URLs are refused")
    if port == 0:
        raise _refused(url, "port 0")
    host, address = _parse_host(parts.netloc, parts.hostname, url)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    path = quote(target, safe=_TARGET_SAFE)
    return Target(scheme, host, port or DEFAULT_PORTS[scheme], path, address)


def parse_ipv4_like_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """Read ``text`` as ``inet_aton`` (and so getaddrinfo) does: 1-4 parts, each decimal, octal
    (leading 0) or hex (0x), the last filling the remaining bytes: ``127.1``, ``0x7f.0.0.1``,
    ``017700000001`` and ``2130706433`` are all 127.0.0.1. ``None`` when it is not such a form."""
    parts = text.lower().split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        if _HEX.fullmatch(part):
            values.append(int(part[2:], 16))
        elif _OCT.fullmatch(part):
            values.append(int(part, 8))
        elif _DEC.fullmatch(part):
            values.append(int(part))
        else:
            return None
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (5 - len(values))):
        return None
    for index, value in enumerate(head):
        last |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(last)


def address_problem(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a fetch must not connect to ``address`` (``None`` when it may).

    Only globally routable unicast addresses pass. ``allow_loopback`` (tests only) lets exactly
    127.0.0.0/8 and ::1 through; loopback hidden in an IPv6 form (``::ffff:127.0.0.1``) never is.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_problem(address, allow_loopback=allow_loopback)
    return _v6_problem(address, allow_loopback=allow_loopback)


def check_address(address: IPAddress, *, allow_loopback: bool, url: str | None = None) -> None:
    """Raise :class:`FetchRefusedError` unless a fetch may connect to ``address``."""
    problem = address_problem(address, allow_loopback=allow_loopback)
    if problem is not None:
        raise _refused(url, f"address {address} is {problem}")


async def resolve_and_vet(
    target: Target, resolver: Resolver, *, allow_loopback: bool
) -> tuple[IPAddress, ...]:
    """Every address of the target's host, in resolver order, once ALL of them passed the guard.

    One forbidden address refuses the whole host: a name answering both a public and a private
    address is exactly what a rebinding attack looks like.
    """
    if target.address is not None:
        check_address(target.address, allow_loopback=allow_loopback, url=target.url)
        return (target.address,)
    try:
        answers = await resolver(target.host, target.port)
    except socket.gaierror as exc:
        raise _resolution_error(target, exc) from exc
    except OSError as exc:
        raise FetchFailedError(f"cannot resolve {target.host}: {exc}", url=target.url) from exc
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer)
        except ValueError as exc:
            raise _refused(target.url, f"resolver answered a non-address {answer!r}") from exc
        check_address(address, allow_loopback=allow_loopback, url=target.url)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchNotFoundError(f"{target.host} has no address", url=target.url)
    return tuple(addresses)


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo, all families), off the event loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def offline_resolver(host: str, port: int) -> list[str]:
    """A resolver that knows no names (offline mode): every lookup fails as an unknown host."""
    raise socket.gaierror(socket.EAI_NONAME, f"{host}: no name resolution in offline mode")


# --- helpers ----------------------------------------------------------------------------------


def _refused(url: str | None, reason: str) -> FetchRefusedError:
    return FetchRefusedError(f"refused {url!r}: {reason}", url=url)


def _check_characters(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise _refused(url[:100] + "...", f"URL longer than {MAX_URL_LENGTH} characters")
    for char in url:
        # urlsplit silently drops tabs and newlines, and browsers read "\" as "/": refuse them
        if char.isspace() or char == "\\" or unicodedata.category(char).startswith("C"):
            raise _refused(url, f"URL contains the character {char!r}")


def _parse_host(netloc: str, hostname: str | None, url: str) -> tuple[str, IPAddress | None]:
    if not hostname:
        raise _refused(url, "no host")
    if "%" in hostname:
        raise _refused(url, "percent-encoded hosts and IPv6 zone ids are refused")
    if netloc.startswith("["):
        try:
            v6 = ipaddress.IPv6Address(hostname)
        except ValueError as exc:
            raise _refused(url, f"bracketed host {hostname!r} is not an IPv6 address") from exc
        return str(v6), v6
    try:
        # IDNA first: it maps full-width digits and ideographic dots to ASCII ones
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise _refused(url, "invalid international host name") from exc
    bare = ascii_host.removesuffix(".")
    labels = bare.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # a host whose last label is a number is an IPv4 address or nothing (as in WHATWG URL)
        v4 = parse_ipv4_like_inet_aton(bare)
        if v4 is None:
            raise _refused(url, f"malformed numeric host {hostname!r}")
        return str(v4), v4
    if len(bare) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise _refused(url, f"invalid host name {hostname!r}")
    return bare, None


def _v4_problem(address: ipaddress.IPv4Address, *, allow_loopback: bool) -> str | None:
    if address in _LOOPBACK_V4:
        return None if allow_loopback else "loopback"
    for network, why in _V4_FORBIDDEN:
        if address in network:
            return why
    return None if address.is_global else "not globally routable"


def _v6_problem(address: ipaddress.IPv6Address, *, allow_loopback: bool) -> str | None:
    if address.scope_id is not None:
        return "scoped (has a zone id)"
    if address.is_unspecified:
        return "unspecified"
    if address == _LOOPBACK_V6:
        return None if allow_loopback else "loopback"
    embedded = _embedded_v4(address)
    if embedded is not None:
        kind, v4 = embedded
        inner = _v4_problem(v4, allow_loopback=False)
        if inner is not None:
            return f"{kind} form of {v4}, which is {inner}"
    for network, why in _V6_FORBIDDEN:
        if address in network:
            return why
    return None if address.is_global else "not globally routable"


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", low32
    if address in _V4_COMPATIBLE:
        return "IPv4-compatible", low32
    return None


def _resolution_error(
    target: Target, exc: socket.gaierror
) -> FetchNotFoundError | FetchFailedError:
    gone = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)}
    message = f"cannot resolve {target.host}: {exc}"
    if exc.errno in gone:
        return FetchNotFoundError(message, url=target.url)
    return FetchFailedError(message, url=target.url)
