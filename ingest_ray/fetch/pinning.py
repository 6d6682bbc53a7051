"""An httpcore network backend that connects only to addresses the guard has vetted.

httpcore asks its backend to ``connect_tcp(host, port)`` with the URL's host name. This backend
ignores what that name would resolve to now and connects to the address(es) pinned for
``(host, port)`` when the guard checked them, so a DNS answer that changes between check and
connect (DNS rebinding) cannot redirect us. TLS is untouched: httpcore still passes the original
host name as SNI and for certificate verification.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import httpcore

from ingest_ray.fetch.errors import FetchRefusedError
from ingest_ray.fetch.guard import IPAddress, check_address


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Wraps a real backend; every TCP connection goes to a pinned, re-checked address."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, *, allow_loopback: bool) -> None:
        self._inner = inner
        self._allow_loopback = allow_loopback
        self._pins: dict[tuple[str, int], tuple[IPAddress, ...]] = {}

    def pin(self, host: str, port: int, addresses: Sequence[IPAddress]) -> None:
        """Connections to ``host:port`` go to ``addresses`` (tried in order) from now on."""
        self._pins[(host, port)] = tuple(addresses)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first pinned address of ``host:port`` that answers."""
        addresses = self._pins.get((host, port))
        if not addresses:
            raise FetchRefusedError(f"refused connection to {host}:{port}: no vetted address")
        last_error: Exception | None = None
        for address in addresses:
            # checked again here so no code path can reach an address the guard would refuse
            check_address(address, allow_loopback=self._allow_loopback)
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a fetch only speaks TCP to vetted addresses."""
        raise FetchRefusedError(f"refused connection to unix socket {path!r}")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the wrapped backend."""
        await self._inner.sleep(seconds)
