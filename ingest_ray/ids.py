"""Identifiers: sortable, unique job and event ids (ULIDs)."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

from ulid import ULID

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class _Last:
    """The last id made by this process, so that ids made in one millisecond still sort in
    creation order (the ULID spec's monotonic mode)."""

    value = 0
    lock = threading.Lock()


def new_id() -> str:
    """A new ULID string: 26 characters, lexically sortable by creation time (48 bits of
    milliseconds, 80 random bits, Crockford base32). Built here rather than through
    ``python-ulid``'s object: it is on the hot path of every job and message."""
    with _Last.lock:
        now = (time.time_ns() // 1_000_000) << 80
        value = now | int.from_bytes(os.urandom(10), "big")
        if value <= _Last.value:  # the same millisecond (or a clock step back)
            value = _Last.value + 1
        _Last.value = value
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
