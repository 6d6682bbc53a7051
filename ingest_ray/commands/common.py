"""What every command module shares: consoles and the settings."""

from __future__ import annotations

from rich.console import Console

from ingest_ray.config import Settings, get_settings

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    """The process settings (environment, ``INGEST_RAY_*``)."""
    return get_settings()
