"""Test doubles for the fetcher: a fake DNS, network backends that record (and police) every
connection, and a loopback HTTP(S) server with scripted routes."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpcore


class FakeResolver:
    """DNS from a table: each name has a list of successive answers (the last one repeats)."""

    def __init__(self, table: dict[str, Sequence[Sequence[str]]] | None = None) -> None:
        self.table = dict(table or {})
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        answers = self.table.get(host)
        asked = sum(1 for name, _ in self.calls if name == host)
        self.calls.append((host, port))
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(answers[min(asked, len(answers) - 1)])


class TripwireBackend(httpcore.AsyncNetworkBackend):
    """Records every connection attempt; only loopback addresses reach the real network.

    Any attempt to connect anywhere else fails the test with an AssertionError (which no
    ``pytest.raises(FetchError...)`` would swallow).
    """

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a connection to non-loopback {host}:{port} was attempted")
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError(f"a unix socket connection to {path} was attempted")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class ScriptedStream(httpcore.AsyncMockStream):
    """An in-memory connection: serves canned bytes, records what was sent and the TLS call."""

    def __init__(self, buffer: list[bytes], backend: ScriptedBackend) -> None:
        super().__init__(buffer)
        self.backend = backend

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.backend.sent.append(buffer)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.backend.tls.append((server_hostname, ssl_context))
        return self


class ScriptedBackend(httpcore.AsyncNetworkBackend):
    """No network at all: connection number i serves ``responses[i]`` (a list of byte chunks)."""

    def __init__(self, *responses: list[bytes]) -> None:
        self.responses = [list(chunks) for chunks in responses]
        self.connects: list[tuple[str, int]] = []
        self.sent: list[bytes] = []
        self.tls: list[tuple[str | None, ssl.SSLContext]] = []
        self.streams: list[ScriptedStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        stream = ScriptedStream(self.responses[len(self.streams)], self)
        self.streams.append(stream)
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("unix socket")

    async def sleep(self, seconds: float) -> None:
        return None


def http_response(
    status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None
) -> list[bytes]:
    """Raw HTTP/1.1 response bytes (Content-Length set unless given), as one chunk + body."""
    fields = {"Content-Length": str(len(body)), **(headers or {})}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return [head.encode() + b"\r\n", body] if body else [head.encode() + b"\r\n"]


# --- a loopback HTTP(S) server ----------------------------------------------------------------

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    """Dispatches GETs to the server's routes; HTTP/1.0, so an unsized body ends at close."""

    server: LoopbackHTTPServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.owner.seen.append((self.path, dict(self.headers.items())))
        route = self.server.owner.routes.get(path)
        if route is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        route(self)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class LoopbackHTTPServer(ThreadingHTTPServer):
    # handler threads are joined on close, so nothing outlives the test
    daemon_threads = False
    owner: LoopbackServer


class LoopbackServer:
    """A threaded HTTP (or HTTPS) server on 127.0.0.1 with a table of routes."""

    def __init__(self, routes: dict[str, Route], tls: ssl.SSLContext | None = None) -> None:
        self.routes = routes
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.sent: dict[str, int] = {}
        self._tls = tls
        self._httpd = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.owner = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def serve_bytes(body: bytes, content_type: str = "application/pdf", **headers: str) -> Route:
    """200 with ``body`` and a Content-Length."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect_to(location: str, status: int = 302) -> Route:
    """A redirect to ``location`` (absolute or relative)."""

    def route(handler: Handler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def status_only(status: int, **headers: str) -> Route:
    """An empty response with ``status`` and extra headers."""

    def route(handler: Handler) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def endless_pdf(name: str, total: int, chunk: int = 64 * 1024) -> Route:
    """200 without Content-Length streaming ``total`` bytes of a "PDF"; records bytes sent."""

    def route(handler: Handler) -> None:
        owner = handler.server.owner
        block = b"%PDF-1.7\n" + b"0" * (chunk - 9)
        sent = 0
        handler.send_response(200)
        handler.send_header("Content-Type", "application/pdf")
        handler.end_headers()
        try:
            while sent < total and not owner.stopping.is_set():
                handler.wfile.write(block)
                sent += len(block)
        except OSError:
            pass  # the client hung up: that is the point
        finally:
            owner.sent[name] = sent
            owner.done.set()

    return route


def stalls_after(first: bytes) -> Route:
    """200 announcing a large body, sends ``first``, then stalls until the server stops."""

    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000000")
        handler.end_headers()
        handler.wfile.write(first)
        handler.server.owner.stopping.wait(10)

    return route


# --- TLS material -------------------------------------------------------------------------------


def make_tls(tmp: Path, server_names: Sequence[str]) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA (written to ``tmp/ca.pem``) and a server context whose certificate, signed
    by that CA, is valid for ``server_names`` only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ingest-ray test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in server_names]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = tmp / "ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = tmp / "server.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return ca_pem, context
