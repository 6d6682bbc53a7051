"""Retention on the Redis ledger: find finished jobs older than a cutoff and delete each with
``lua/prune.lua`` (which re-checks status and age atomically), in pipelined batches.

Only jobs created before the cutoff can have finished before it, so the scan walks the
finished-status indexes (ULID members: lexical = creation order) from the oldest id up to the
cutoff's id ceiling, and stops there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import redis
from redis.commands.core import Script

from ingest_ray.ids import id_ceiling
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.redis_scripts import run_pipelined
from ingest_ray.states import TERMINAL

_TERMINAL_ARG = ",".join(sorted(s.value for s in TERMINAL))


def prune(
    client: redis.Redis,
    keys: RedisKeys,
    script: Script,
    before: datetime,
    *,
    tenant_id: str | None,
    exclude_tenants: Sequence[str],
    batch: int,
) -> int:
    """Delete finished jobs that finished before ``before``; answer how many."""
    before_ms = int(before.timestamp() * 1000)
    excluded = json.dumps(list(exclude_tenants))
    upper = f"[{id_ceiling(before)}"
    deleted = 0
    for status in sorted(s.value for s in TERMINAL):
        scope = f"tenant:{tenant_id}:status:{status}" if tenant_id else f"status:{status}"
        lower = "-"
        while True:
            ids = cast(
                "list[str]",
                client.zrange(keys.index(scope), lower, upper, bylex=True, offset=0, num=batch),
            )
            if not ids:
                break
            calls = [(script, [keys.prefix, job_id, before_ms, _TERMINAL_ARG, excluded])
                     for job_id in ids]  # fmt: skip
            deleted += sum(int(n) for n in run_pipelined(client, calls))
            if len(ids) < batch:
                break
            lower = f"({ids[-1]}"
    return deleted
