"""SafeFetcher against a loopback HTTP server (reachable only because the test settings allow
loopback): happy path, redirects, caps, bad content and the typed errors."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from ingest_ray.fetch import (
    FetchFailedError,
    FetchHttpError,
    FetchNotFoundError,
    FetchRefusedError,
    FetchSettings,
    NotAPdfError,
    PdfTooLargeError,
    SafeFetcher,
    TooManyRedirectsError,
)
from ingest_ray.storage import FileBlobStore
from tests.unit.fetch.support import (
    FakeResolver,
    LoopbackServer,
    ScriptedBackend,
    TripwireBackend,
    endless_pdf,
    http_response,
    redirect_to,
    serve_bytes,
    stalls_after,
    status_only,
)


def _fetcher(
    settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> SafeFetcher:
    return SafeFetcher(settings, blobs, resolver=resolver, network_backend=tripwire)


def _blob_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def test_fetch_pdf_stores_a_real_pdf(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
) -> None:
    with LoopbackServer({"/paper.pdf": serve_bytes(pdf_bytes)}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        fetched = asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf")))
    assert fetched.sha256 == hashlib.sha256(pdf_bytes).hexdigest()
    assert fetched.size == len(pdf_bytes)
    assert fetched.final_url == server.url("/paper.pdf")
    assert fetched.content_type == "application/pdf"
    assert blobs.get(fetched.sha256) == pdf_bytes
    assert tripwire.connects == [("127.0.0.1", server.port)]


def test_fetch_pdf_keeps_host_header_while_connecting_to_the_vetted_address(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
) -> None:
    with LoopbackServer({"/paper.pdf": serve_bytes(pdf_bytes)}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf", host="pdfs.test")))
    assert server.seen[0][1]["Host"] == f"pdfs.test:{server.port}"
    assert server.seen[0][1]["Accept-Encoding"] == "identity"
    assert "Authorization" not in server.seen[0][1]
    assert resolver.calls == [("pdfs.test", server.port)]
    assert tripwire.connects == [("127.0.0.1", server.port)]


def test_fetch_pdf_same_pdf_twice_is_stored_once(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
) -> None:
    routes = {"/a.pdf": serve_bytes(pdf_bytes), "/b.pdf": serve_bytes(pdf_bytes)}
    with LoopbackServer(routes) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        first = asyncio.run(fetcher.fetch_pdf(server.url("/a.pdf")))
        second = asyncio.run(fetcher.fetch_pdf(server.url("/b.pdf")))
    assert first.sha256 == second.sha256
    assert _blob_files(blobs.root) == [blobs.path(first.sha256)]


def test_fetch_pdf_follows_a_redirect_chain(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
) -> None:
    with LoopbackServer({"/paper.pdf": serve_bytes(pdf_bytes)}) as server:
        server.routes.update(
            {
                "/doi": redirect_to(server.url("/landing", host="pdfs.test"), 301),
                "/landing": redirect_to("/files/../download?id=7", 303),
                "/download": redirect_to("paper.pdf", 307),
            }
        )
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        fetched = asyncio.run(fetcher.fetch_pdf(server.url("/doi")))
    assert fetched.final_url == server.url("/paper.pdf", host="pdfs.test")
    assert [path for path, _ in server.seen] == ["/doi", "/landing", "/download?id=7", "/paper.pdf"]
    assert {address for address, _ in tripwire.connects} == {"127.0.0.1"}


def test_fetch_pdf_stops_after_max_redirects(
    tmp_path: Path,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    settings = FetchSettings(allow_loopback=True, max_redirects=2)
    with LoopbackServer({"/loop": redirect_to("/loop")}) as server:
        fetcher = _fetcher(settings, blobs, resolver, tripwire)
        with pytest.raises(TooManyRedirectsError):
            asyncio.run(fetcher.fetch_pdf(server.url("/loop")))
    assert len(server.seen) == 3


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/paper.pdf",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/paper.pdf",
        "http://intranet.test/paper.pdf",
        "http://metadata.test/",
        "http://[::ffff:127.0.0.1]:{port}/paper.pdf",
        "http://user:secret@127.0.0.1:{port}/paper.pdf",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "ftp://127.0.0.1/paper.pdf",
        "data:application/pdf;base64,JVBERi0xLjQK",
        "//192.168.0.1/paper.pdf",
    ],
)
def test_fetch_pdf_refuses_a_redirect_to_a_forbidden_target(
    location: str,
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    with LoopbackServer({}) as server:
        server.routes["/start"] = redirect_to(location.replace("{port}", str(server.port)))
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        with pytest.raises(FetchRefusedError):
            asyncio.run(fetcher.fetch_pdf(server.url("/start")))
    assert tripwire.connects == [("127.0.0.1", server.port)]
    assert [path for path, _ in server.seen] == ["/start"]


def test_fetch_pdf_aborts_a_streamed_body_over_the_cap(
    tmp_path: Path, blobs: FileBlobStore, resolver: FakeResolver, tripwire: TripwireBackend
) -> None:
    total = 64 * 1024 * 1024
    settings = FetchSettings(allow_loopback=True, max_bytes=256 * 1024)
    with LoopbackServer({"/huge.pdf": endless_pdf("huge", total)}) as server:
        fetcher = _fetcher(settings, blobs, resolver, tripwire)
        with pytest.raises(PdfTooLargeError):
            asyncio.run(fetcher.fetch_pdf(server.url("/huge.pdf")))
        assert server.done.wait(10)
    # the server could not hand over the whole body: the client hung up early
    assert server.sent["huge"] < total
    assert _blob_files(blobs.root) == []


def test_fetch_pdf_refuses_an_announced_oversize_body(
    tmp_path: Path, blobs: FileBlobStore, resolver: FakeResolver, tripwire: TripwireBackend
) -> None:
    settings = FetchSettings(allow_loopback=True, max_bytes=1000)
    body = b"%PDF-1.4\n" + b"x" * 5000
    with LoopbackServer({"/big.pdf": serve_bytes(body)}) as server:
        fetcher = _fetcher(settings, blobs, resolver, tripwire)
        with pytest.raises(PdfTooLargeError, match="announces 5009 bytes"):
            asyncio.run(fetcher.fetch_pdf(server.url("/big.pdf")))


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>Access denied</body></html>",
        b"",
        b"PK\x03\x04 a zip, not a pdf",
        b" " * 1024 + b"%PDF-1.4\n",
    ],
)
def test_fetch_pdf_refuses_a_body_without_pdf_magic(
    body: bytes,
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    with LoopbackServer({"/paper.pdf": serve_bytes(body, "application/pdf")}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        with pytest.raises(NotAPdfError):
            asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf")))
    assert _blob_files(blobs.root) == []


def test_fetch_pdf_accepts_leading_junk_within_1024_bytes(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
) -> None:
    body = b"\r\n" * 511 + pdf_bytes
    with LoopbackServer({"/paper.pdf": serve_bytes(body, "text/html")}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        fetched = asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf")))
    assert fetched.size == len(body)
    assert fetched.content_type == "text/html"


def test_fetch_pdf_refuses_a_compressed_response(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
    pdf_bytes: bytes,
) -> None:
    route = serve_bytes(pdf_bytes, Content_Encoding="gzip")
    with LoopbackServer({"/paper.pdf": route}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        with pytest.raises(NotAPdfError, match="content-encoding 'gzip'"):
            asyncio.run(fetcher.fetch_pdf(server.url("/paper.pdf")))


def test_fetch_pdf_gives_up_after_the_total_timeout(
    tmp_path: Path, blobs: FileBlobStore, resolver: FakeResolver, tripwire: TripwireBackend
) -> None:
    settings = FetchSettings(allow_loopback=True, total_timeout_s=0.3)
    with LoopbackServer({"/slow.pdf": stalls_after(b"%PDF-1.4\n")}) as server:
        fetcher = _fetcher(settings, blobs, resolver, tripwire)
        with pytest.raises(FetchFailedError, match=r"took longer than 0\.3s") as caught:
            asyncio.run(fetcher.fetch_pdf(server.url("/slow.pdf")))
    assert caught.value.retryable


@pytest.mark.parametrize("status", [404, 410])
def test_fetch_pdf_maps_gone_to_not_found(
    status: int,
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    with LoopbackServer({"/gone.pdf": status_only(status)}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        with pytest.raises(FetchNotFoundError) as caught:
            asyncio.run(fetcher.fetch_pdf(server.url("/gone.pdf")))
    assert caught.value.status == status
    assert not caught.value.retryable


def test_fetch_pdf_maps_503_with_retry_after_to_retryable(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    with LoopbackServer({"/busy.pdf": status_only(503, Retry_After="120")}) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        with pytest.raises(FetchFailedError) as caught:
            asyncio.run(fetcher.fetch_pdf(server.url("/busy.pdf")))
    assert caught.value.retryable
    assert caught.value.status == 503
    assert caught.value.retry_after == 120.0


def test_fetch_pdf_maps_429_to_retryable_and_403_to_permanent(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    routes = {"/limited": status_only(429), "/forbidden": status_only(403)}
    with LoopbackServer(routes) as server:
        fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
        with pytest.raises(FetchFailedError) as limited:
            asyncio.run(fetcher.fetch_pdf(server.url("/limited")))
        with pytest.raises(FetchHttpError) as forbidden:
            asyncio.run(fetcher.fetch_pdf(server.url("/forbidden")))
    assert (limited.value.status, limited.value.retry_after) == (429, None)
    assert (forbidden.value.status, forbidden.value.retryable) == (403, False)


def test_fetch_pdf_maps_a_refused_connection_to_retryable(
    loopback_settings: FetchSettings,
    blobs: FileBlobStore,
    resolver: FakeResolver,
    tripwire: TripwireBackend,
) -> None:
    with LoopbackServer({}) as server:
        url = server.url("/paper.pdf")
    # the server is closed now: nothing listens on that port
    fetcher = _fetcher(loopback_settings, blobs, resolver, tripwire)
    with pytest.raises(FetchFailedError) as caught:
        asyncio.run(fetcher.fetch_pdf(url))
    assert caught.value.retryable


def test_fetch_pdf_reads_a_utf8_location_header(
    strict_settings: FetchSettings, blobs: FileBlobStore, pdf_bytes: bytes
) -> None:
    resolver = FakeResolver({"pdfs.example.org": [["93.184.216.34"]]})
    backend = ScriptedBackend(
        [b"HTTP/1.1 302 Found\r\nLocation: /f\xc3\xbcr/paper.pdf\r\nContent-Length: 0\r\n\r\n"],
        http_response(200, pdf_bytes),
    )
    fetcher = SafeFetcher(strict_settings, blobs, resolver=resolver, network_backend=backend)
    fetched = asyncio.run(fetcher.fetch_pdf("https://pdfs.example.org/start"))
    assert fetched.final_url == "https://pdfs.example.org/f%C3%BCr/paper.pdf"
    assert b"GET /f%C3%BCr/paper.pdf HTTP/1.1\r\n" in b"".join(backend.sent)
