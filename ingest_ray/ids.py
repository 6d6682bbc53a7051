"""Identifiers: sortable, unique job and event ids (ULIDs)."""

from __future__ import annotations

from datetime import datetime

from ulid import ULID


def new_id() -> str:
    """A new ULID string: 26 characters, lexically sortable by creation time."""
    return str(ULID())


def id_floor(moment: datetime) -> str:
    """The smallest ULID for ``moment``: ids created at or after it sort at or above it."""
    return str(ULID.from_datetime(moment))[:10] + "0" * 16


def id_ceiling(moment: datetime) -> str:
    """The largest ULID for ``moment``: ids created at or before it sort at or below it."""
    return str(ULID.from_datetime(moment))[:10] + "Z" * 16
