"""Free TCP ports on loopback, for services started on demand (test stacks, throw-away
brokers, simulated Ray nodes, a temporary PostgreSQL).

A port is free when it is asked for; another process may take it before the caller binds it, so
callers that start a service on it retry on a bind failure where that matters.
"""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports on loopback, all free a moment ago (held together while chosen,
    so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port() -> int:
    """One TCP port on loopback that was free a moment ago."""
    return free_ports(1)[0]
