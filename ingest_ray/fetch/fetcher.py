"""SafeFetcher: download a PDF from an untrusted URL (or take a local file) into the blob store.

Each hop of a fetch is checked by the guard (URL shape, then every resolved address), the
connection is pinned to the vetted addresses, redirects are followed by hand so each new hop is
checked again, the body is streamed under a byte cap, and the whole fetch runs under one
wall-clock budget. Only bytes that start like a PDF are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import re
import ssl
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urljoin

import certifi
import httpcore

from ingest_ray.fetch.errors import (
    FetchFailedError,
    FetchHttpError,
    FetchNotFoundError,
    FetchRefusedError,
    NotAPdfError,
    PdfTooLargeError,
    TooManyRedirectsError,
)
from ingest_ray.fetch.guard import (
    Resolver,
    Target,
    offline_resolver,
    parse_target,
    resolve_and_vet,
    system_resolver,
)
from ingest_ray.fetch.pinning import PinnedBackend
from ingest_ray.fetch.settings import FetchSettings
from ingest_ray.storage.blobs import BlobStore

PDF_MAGIC: Final = b"%PDF-"
#: PDF readers accept a header that starts anywhere in the first 1024 bytes (leading junk)
MAGIC_WINDOW: Final = 1024
_MAGIC_SPAN: Final = MAGIC_WINDOW + len(PDF_MAGIC) - 1
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_GONE: Final = frozenset({404, 410})
_RETRYABLE: Final = frozenset({408, 425, 429})
_DIGITS: Final = re.compile(r"[0-9]+", re.ASCII)

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class FetchedPdf:
    """A PDF now in the blob store: its sha256 (the blob key), size, and where it came from."""

    sha256: str
    size: int
    final_url: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Hop:
    """What one request gave: a body, or the next target of a redirect."""

    target: Target
    body: bytes = b""
    content_type: str | None = None
    redirect: Target | None = None


class SafeFetcher:
    """Fetches PDFs from URLs that come from outside without letting them reach our networks.

    ``resolver`` and ``network_backend`` exist for tests (a fake DNS, a recording backend); by
    default the system resolver and httpcore's AnyIO backend are used.
    """

    def __init__(
        self,
        settings: FetchSettings,
        blobs: BlobStore,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._settings = settings
        self._blobs = blobs
        default = offline_resolver if settings.offline else system_resolver
        self._resolver: Resolver = resolver or default
        self._backend = network_backend or httpcore.AnyIOBackend()
        self._ssl: ssl.SSLContext | None = None

    async def fetch_pdf(self, url: str) -> FetchedPdf:
        """Download the PDF at ``url`` and store it; raise a typed ``FetchError`` otherwise."""
        budget = self._settings.total_timeout_s
        try:
            async with asyncio.timeout(budget):
                hop = await self._follow(url)
        except TimeoutError as exc:
            raise FetchFailedError(f"fetching {url!r} took longer than {budget}s", url=url) from exc
        digest = await asyncio.to_thread(self._put, hop.body, hop.target.url)
        return FetchedPdf(digest, len(hop.body), hop.target.url, hop.content_type)

    def store_local_pdf(self, path: Path) -> FetchedPdf:
        """Check that a local file is a PDF within ``max_bytes`` and store it."""
        data = self._read_local(Path(path))
        check_pdf_magic(data, str(path))
        return FetchedPdf(self._put(data, str(path)), len(data), None, None)

    def adopt_blob(self, digest: str) -> FetchedPdf:
        """Take a PDF that is already in the blob store (an upload): check it as a local
        file is checked (``max_bytes``, the PDF magic) and hand on its digest."""
        try:
            data = self._blobs.get(digest)
        except ValueError as exc:
            raise FetchRefusedError(f"not a blob reference: {digest!r}", url=digest) from exc
        if len(data) > self._settings.max_bytes:
            raise PdfTooLargeError(
                f"blob {digest} has {len(data)} bytes (limit {self._settings.max_bytes})",
                url=digest,
            )
        check_pdf_magic(data, f"blob {digest}")
        return FetchedPdf(digest, len(data), None, None)

    async def aclose(self) -> None:
        """Nothing to release: each fetch opens and closes its own connection pool."""

    # --- remote -------------------------------------------------------------------------------

    async def _follow(self, url: str) -> _Hop:
        settings = self._settings
        target = parse_target(url, allowed_schemes=settings.allowed_schemes)
        backend = PinnedBackend(self._backend, allow_loopback=settings.allow_loopback)
        async with httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context(), network_backend=backend, max_connections=2, retries=0
        ) as pool:
            for _ in range(settings.max_redirects + 1):
                addresses = await resolve_and_vet(
                    target, self._resolver, allow_loopback=settings.allow_loopback
                )
                backend.pin(target.host, target.port, addresses)
                hop = await self._get(pool, target)
                if hop.redirect is None:
                    return hop
                target = hop.redirect
        raise TooManyRedirectsError(
            f"more than {settings.max_redirects} redirects from {url!r}", url=url
        )

    async def _get(self, pool: httpcore.AsyncConnectionPool, target: Target) -> _Hop:
        url = httpcore.URL(
            scheme=target.scheme, host=target.host, port=target.port, target=target.path
        )
        with _translate_errors(target.url):
            async with pool.stream(
                "GET", url, headers=self._headers(target), extensions=self._extensions()
            ) as response:
                if response.status in _REDIRECTS:
                    return _Hop(target, redirect=self._redirect(target, response))
                _raise_for_status(response.status, response.headers, target.url)
                self._check_announced(response.headers, target.url)
                body = await self._read_body(response, target.url)
                return _Hop(target, body, header(response.headers, b"content-type"))

    def _redirect(self, target: Target, response: httpcore.Response) -> Target:
        raw = next((v for k, v in response.headers if k.lower() == b"location"), b"")
        # servers send UTF-8 paths in Location (as browsers assume); Latin-1 never fails
        try:
            location = raw.decode("utf-8")
        except UnicodeDecodeError:
            location = raw.decode("latin-1")
        if not location.strip():
            raise FetchHttpError(
                f"redirect {response.status} without Location from {target.url}",
                url=target.url,
                status=response.status,
            )
        next_url = urljoin(target.url, location.strip())
        return parse_target(next_url, allowed_schemes=self._settings.allowed_schemes)

    def _check_announced(self, headers: Headers, url: str) -> None:
        encoding = (header(headers, b"content-encoding") or "identity").strip().lower()
        if encoding != "identity":
            # we asked for identity; decoding would let a small body expand without bound
            raise NotAPdfError(f"{url} answered with content-encoding {encoding!r}", url=url)
        length = (header(headers, b"content-length") or "").strip()
        if _DIGITS.fullmatch(length) and int(length) > self._settings.max_bytes:
            raise PdfTooLargeError(
                f"{url} announces {length} bytes (limit {self._settings.max_bytes})", url=url
            )

    async def _read_body(self, response: httpcore.Response, url: str) -> bytes:
        limit = self._settings.max_bytes
        body = bytearray()
        checked = False
        async for chunk in response.aiter_stream():
            body += chunk
            if len(body) > limit:
                raise PdfTooLargeError(f"{url} sent more than {limit} bytes", url=url)
            if not checked and len(body) >= _MAGIC_SPAN:
                check_pdf_magic(body, url)
                checked = True
        if not checked:
            check_pdf_magic(body, url)
        return bytes(body)

    def _headers(self, target: Target) -> list[tuple[bytes, bytes]]:
        return [
            (b"Host", target.authority.encode("ascii")),
            (b"User-Agent", self._settings.user_agent.encode()),
            (b"Accept", b"application/pdf, */*;q=0.5"),
            (b"Accept-Encoding", b"identity"),
        ]

    def _extensions(self) -> dict[str, object]:
        connect, read = self._settings.connect_timeout_s, self._settings.read_timeout_s
        return {"timeout": {"connect": connect, "read": read, "write": read, "pool": connect}}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            cafile = self._settings.ca_bundle or certifi.where()
            self._ssl = ssl.create_default_context(cafile=str(cafile))
        return self._ssl

    # --- local and storage --------------------------------------------------------------------

    def _read_local(self, path: Path) -> bytes:
        where, limit = str(path), self._settings.max_bytes
        resolved = path.resolve()
        roots = self._settings.local_roots
        if roots and not any(resolved.is_relative_to(root.resolve()) for root in roots):
            raise FetchRefusedError(f"{where} is outside the allowed local roots", url=where)
        try:
            # O_NONBLOCK: opening a FIFO must not hang; fstat below refuses anything not a file
            fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise FetchNotFoundError(f"no such file: {where}", url=where) from exc
        except PermissionError as exc:
            raise FetchRefusedError(f"cannot read {where}: permission denied", url=where) from exc
        except OSError as exc:
            raise FetchFailedError(f"cannot open {where}: {exc}", url=where) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchRefusedError(f"{where} is not a regular file", url=where)
            if info.st_size > limit:
                raise PdfTooLargeError(
                    f"{where} has {info.st_size} bytes (limit {limit})", url=where
                )
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read(limit + 1)
        finally:
            os.close(fd)
        if len(data) > limit:
            raise PdfTooLargeError(f"{where} has more than {limit} bytes", url=where)
        return data

    def _put(self, data: bytes, where: str) -> str:
        try:
            return self._blobs.put(data)
        except OSError as exc:
            raise FetchFailedError(f"cannot store the PDF from {where}: {exc}", url=where) from exc


# --- helpers ----------------------------------------------------------------------------------


def check_pdf_magic(data: bytes | bytearray, where: str) -> None:
    """Raise :class:`NotAPdfError` unless ``%PDF-`` starts within the first 1024 bytes."""
    if PDF_MAGIC not in data[:_MAGIC_SPAN]:
        head = bytes(data[:40])
        raise NotAPdfError(f"{where} is not a PDF (starts with {head!r})", url=where)


def header(headers: Headers, name: bytes) -> str | None:
    """The first value of header ``name`` (case-insensitive), decoded as Latin-1."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _raise_for_status(status: int, headers: Headers, url: str) -> None:
    if 200 <= status < 300:
        return
    message = f"HTTP {status} from {url}"
    if status in _GONE:
        raise FetchNotFoundError(message, url=url, status=status)
    if status in _RETRYABLE or status >= 500:
        retry_after = parse_retry_after(header(headers, b"retry-after"))
        raise FetchFailedError(message, url=url, status=status, retry_after=retry_after)
    raise FetchHttpError(message, url=url, status=status)


@contextlib.contextmanager
def _translate_errors(url: str) -> Iterator[None]:
    """httpcore's transport errors, as the fetcher's typed errors."""
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise FetchFailedError(f"timed out on {url} ({type(exc).__name__})", url=url) from exc
    except httpcore.ConnectError as exc:
        cause = _verification_error(exc)
        if cause is not None:
            reason = cause.verify_message or str(cause)
            raise FetchRefusedError(
                f"TLS verification failed for {url}: {reason}", url=url
            ) from exc
        raise FetchFailedError(f"cannot connect for {url}: {exc}", url=url) from exc
    except (httpcore.NetworkError, httpcore.RemoteProtocolError) as exc:
        raise FetchFailedError(f"connection trouble on {url}: {exc!r}", url=url) from exc


def _verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a connect error, if that is what it was.

    httpcore wraps the ``ssl`` error; depending on the path it is the cause, the context or the
    argument of the wrapper, so all three are searched (a few levels deep).
    """
    seen: list[BaseException] = [exc]
    for current in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        linked = [current.__cause__, current.__context__, *current.args]
        seen.extend(e for e in linked if isinstance(e, BaseException) and e not in seen)
        if len(seen) > 8:
            break
    return None
