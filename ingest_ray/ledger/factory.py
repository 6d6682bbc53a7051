"""The one place a ledger backend is chosen from the settings."""

from __future__ import annotations

from ingest_ray.config import Settings
from ingest_ray.ledger.base import Ledger
from ingest_ray.ledger.redis import RedisLedger


def open_ledger(settings: Settings) -> Ledger:
    """The ledger the settings name (Redis today)."""
    return RedisLedger.from_settings(settings)
