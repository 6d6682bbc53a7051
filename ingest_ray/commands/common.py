"""What every command module shares: consoles and the settings."""

from __future__ import annotations

import socket

from rich.console import Console

from ingest_ray.config import Settings, get_settings
from ingest_ray.errors import ConfigurationError

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The process settings (environment, ``INGEST_RAY_*``)."""
    return get_settings()


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (0 always can)."""
    if port == 0:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_port(host: str, port: int, what: str, hint: str) -> None:
    """A clear error, before anything starts, when ``port`` is taken."""
    if not port_free(host, port):
        raise ConfigurationError(f"{what}: {host}:{port} is already in use ({hint})")
