"""Identifiers: sortable, unique job and event ids (ULIDs)."""

from __future__ import annotations

import os
import time
from datetime import datetime

from ulid import ULID

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A new ULID string: 26 characters, lexically sortable by creation time (48 bits of
    milliseconds, 80 random bits, Crockford base32). Built here rather than through
    ``python-ulid``'s object: it is on the hot path of every job and message."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def id_floor(moment: datetime) -> str:
    """The smallest ULID for ``moment``: ids created at or after it sort at or above it."""
    return str(ULID.from_datetime(moment))[:10] + "0" * 16


def id_ceiling(moment: datetime) -> str:
    """The largest ULID for ``moment``: ids created at or before it sort at or below it."""
    return str(ULID.from_datetime(moment))[:10] + "Z" * 16
