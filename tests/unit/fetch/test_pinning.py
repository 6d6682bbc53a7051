"""Connections go to the vetted address, never to a later DNS answer; TLS still verifies the
original host name. The offline cases use a scripted backend that opens no socket at all."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
from collections.abc import Iterable
from pathlib import Path

import httpcore
import pytest

from ingest_ray.fetch import FetchRefusedError, FetchSettings, SafeFetcher
from ingest_ray.fetch.pinning import PinnedBackend
from ingest_ray.storage import FileBlobStore
from tests.unit.fetch.support import (
    FakeResolver,
    LoopbackServer,
    ScriptedBackend,
    TripwireBackend,
    http_response,
    make_tls,
    serve_bytes,
)

PUBLIC = "93.184.216.34"


def test_fetch_pdf_connects_to_the_first_vetted_answer_not_a_rebound_one(
    strict_settings: FetchSettings, blobs: FileBlobStore, pdf_bytes: bytes
) -> None:
    resolver = FakeResolver({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    backend = ScriptedBackend(http_response(200, pdf_bytes))
    fetcher = SafeFetcher(strict_settings, blobs, resolver=resolver, network_backend=backend)
    fetched = asyncio.run(fetcher.fetch_pdf("http://rebind.test/paper.pdf"))
    assert fetched.size == len(pdf_bytes)
    assert resolver.calls == [("rebind.test", 80)]
    assert backend.connects == [(PUBLIC, 80)]
    assert b"Host: rebind.test\r\n" in b"".join(backend.sent)


def test_fetch_pdf_refuses_a_redirect_hop_whose_host_rebinds_to_loopback(
    strict_settings: FetchSettings, blobs: FileBlobStore
) -> None:
    resolver = FakeResolver({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    backend = ScriptedBackend(http_response(302, headers={"Location": "/again.pdf"}))
    fetcher = SafeFetcher(strict_settings, blobs, resolver=resolver, network_backend=backend)
    with pytest.raises(FetchRefusedError, match=re.escape("127.0.0.1")):
        asyncio.run(fetcher.fetch_pdf("http://rebind.test/paper.pdf"))
    assert resolver.calls == [("rebind.test", 80), ("rebind.test", 80)]
    assert backend.connects == [(PUBLIC, 80)]


def test_fetch_pdf_uses_sni_and_verification_for_the_original_host(
    strict_settings: FetchSettings, blobs: FileBlobStore, pdf_bytes: bytes
) -> None:
    resolver = FakeResolver({"pdfs.example.org": [[PUBLIC]]})
    backend = ScriptedBackend(http_response(200, pdf_bytes))
    fetcher = SafeFetcher(strict_settings, blobs, resolver=resolver, network_backend=backend)
    fetched = asyncio.run(fetcher.fetch_pdf("https://pdfs.example.org/paper.pdf"))
    assert fetched.final_url == "https://pdfs.example.org/paper.pdf"
    assert backend.connects == [(PUBLIC, 443)]
    [(server_hostname, context)] = backend.tls
    assert server_hostname == "pdfs.example.org"
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED


def test_pinned_backend_refuses_hosts_it_was_not_given() -> None:
    backend = PinnedBackend(ScriptedBackend(), allow_loopback=False)
    backend.pin("a.test", 443, [ipaddress.ip_address(PUBLIC)])
    with pytest.raises(FetchRefusedError):
        asyncio.run(backend.connect_tcp("a.test", 80))
    with pytest.raises(FetchRefusedError):
        asyncio.run(backend.connect_tcp("b.test", 443))
    with pytest.raises(FetchRefusedError):
        asyncio.run(backend.connect_unix_socket("/var/run/docker.sock"))


def test_pinned_backend_rechecks_pinned_addresses() -> None:
    inner = ScriptedBackend([b""])
    backend = PinnedBackend(inner, allow_loopback=False)
    backend.pin("a.test", 80, [ipaddress.ip_address("10.0.0.1")])
    with pytest.raises(FetchRefusedError):
        asyncio.run(backend.connect_tcp("a.test", 80))
    assert inner.connects == []


def test_pinned_backend_tries_the_next_vetted_address_when_one_fails() -> None:
    class FirstFails(ScriptedBackend):
        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            if not self.connects:
                self.connects.append((host, port))
                raise httpcore.ConnectError("unreachable")
            return await super().connect_tcp(host, port)

    inner = FirstFails([b""])
    backend = PinnedBackend(inner, allow_loopback=False)
    backend.pin("a.test", 80, [ipaddress.ip_address("2606:4700::1"), ipaddress.ip_address(PUBLIC)])
    asyncio.run(backend.connect_tcp("a.test", 80))
    assert inner.connects == [("2606:4700::1", 80), (PUBLIC, 80)]


# --- real TLS over loopback --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    return make_tls(tmp_path_factory.mktemp("tls"), ["pdfs.test"])


def test_fetch_pdf_over_tls_verifies_the_host_name_not_the_address(
    tmp_path: Path,
    blobs: FileBlobStore,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
    tls_material: tuple[Path, ssl.SSLContext],
) -> None:
    ca_bundle, server_context = tls_material
    settings = FetchSettings(allow_loopback=True, ca_bundle=ca_bundle)
    resolver = FakeResolver({"pdfs.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    routes = {"/paper.pdf": serve_bytes(pdf_bytes)}
    with LoopbackServer(routes, tls=server_context) as server:
        fetcher = SafeFetcher(settings, blobs, resolver=resolver, network_backend=tripwire)
        fetched = asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf", host="pdfs.test")))
        # same address, same certificate, but the name we asked for is not on it
        with pytest.raises(FetchRefusedError, match="TLS verification failed"):
            asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf", host="other.test")))
        with pytest.raises(FetchRefusedError, match="TLS verification failed"):
            asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf")))
    assert fetched.size == len(pdf_bytes)
    assert server.seen[0][1]["Host"] == f"pdfs.test:{server.port}"
    assert len(server.seen) == 1
    assert {address for address, _ in tripwire.connects} == {"127.0.0.1"}


def test_fetch_pdf_over_tls_refuses_a_certificate_from_an_unknown_ca(
    tmp_path: Path,
    blobs: FileBlobStore,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
    tls_material: tuple[Path, ssl.SSLContext],
) -> None:
    _, server_context = tls_material
    settings = FetchSettings(allow_loopback=True)
    resolver = FakeResolver({"pdfs.test": [["127.0.0.1"]]})
    with LoopbackServer({"/paper.pdf": serve_bytes(pdf_bytes)}, tls=server_context) as server:
        fetcher = SafeFetcher(settings, blobs, resolver=resolver, network_backend=tripwire)
        with pytest.raises(FetchRefusedError, match="TLS verification failed"):
            asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf", host="pdfs.test")))
    assert server.seen == []


def test_fetch_pdf_pins_an_ipv6_literal_and_brackets_its_host_header(
    strict_settings: FetchSettings, blobs: FileBlobStore, pdf_bytes: bytes
) -> None:
    resolver = FakeResolver()
    backend = ScriptedBackend(http_response(200, pdf_bytes))
    fetcher = SafeFetcher(strict_settings, blobs, resolver=resolver, network_backend=backend)
    fetched = asyncio.run(fetcher.fetch_pdf("http://[2606:4700:0::1]:8080/paper.pdf"))
    assert fetched.final_url == "http://[2606:4700::1]:8080/paper.pdf"
    assert backend.connects == [("2606:4700::1", 8080)]
    assert b"Host: [2606:4700::1]:8080\r\n" in b"".join(backend.sent)
    assert resolver.calls == []
