"""A TCP proxy on loopback that cuts every connection after N bytes from the client: an upload
that dies half way, as when a node or the network goes away mid-write."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from typing import Any


def _pump(src: socket.socket, dst: socket.socket, limit: int | None) -> bool:
    """Copy until EOF, or until ``limit`` bytes; True when the limit cut the stream."""
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                return False
            if limit is not None and sent + len(data) > limit:
                dst.sendall(data[: limit - sent])
                return True
            dst.sendall(data)
            sent += len(data)
    except OSError:
        return False


def _abort(sock: socket.socket) -> None:
    # SO_LINGER 0: close with a RST, as a dead peer would look
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        upstream = socket.create_connection(self.server.target, timeout=30)
        back = threading.Thread(target=_pump, args=(upstream, self.request, None), daemon=True)
        back.start()
        if _pump(self.request, upstream, self.server.cut_after):
            self.server.cuts += 1
        _abort(upstream)
        _abort(self.request)
        back.join(timeout=10)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: tuple[str, int], cut_after: int | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.target, self.cut_after, self.cuts = target, cut_after, 0


class CuttingProxy:
    """``with CuttingProxy(("127.0.0.1", port), cut_after=1 << 20) as proxy: proxy.url``"""

    def __init__(self, target: tuple[str, int], *, cut_after: int | None) -> None:
        self._server = _Server(target, cut_after)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def cuts(self) -> int:
        return self._server.cuts

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
