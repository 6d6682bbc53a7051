"""The Redis ledger's fair backlog index: queued jobs per (tenant, priority).

``idx:fair:{tenant}|{priority}`` sorted sets (ULID members, so lexical = creation order) and the
set ``idx:fair-groups`` of groups with members are kept by ``create.lua`` and ``transition.lua``
in the same atomic step as the status change, so they hold exactly the queued jobs. Jobs queued
before the index existed (a ledger from an older release) are added the first time the groups
are read and their total falls short of the queued status index: each is added by a script that
re-checks, atomically, that the job is still queued.
"""

from __future__ import annotations

from typing import Any, cast

import redis

from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import QueuedGroup

MAX_PAGE = 1000

# KEYS: none; ARGV: prefix, then job ids. Adds each still-queued job to its group.
_HEAL = """
local p = ARGV[1]
local added = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local cur = redis.call('HMGET', p .. 'job:' .. id, 'status', 'tenant_id', 'priority')
  if cur[1] == 'queued' then
    local group = cur[2] .. '|' .. (cur[3] or '5')
    added = added + redis.call('ZADD', p .. 'idx:fair:' .. group, 'NX', 0, id)
    redis.call('SADD', p .. 'idx:fair-groups', group)
  end
end
return added
"""


class QueuedIndex:
    """Reads of the fair backlog index (and the one-time catch-up of older ledgers)."""

    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._r = client
        self._keys = keys
        self._heal = client.register_script(_HEAL)
        self._healed = False

    def groups(self) -> list[QueuedGroup]:
        """Every group with queued jobs: its size and its oldest job."""
        names, total = self._read_groups()
        if not self._healed:
            self._healed = True
            if sum(n for _, n, _ in names) < total:
                self._catch_up()
                names, total = self._read_groups()
        out = []
        for name, count, oldest in names:
            tenant, _, priority = name.rpartition("|")
            if count and oldest and priority.isdigit():
                out.append(QueuedGroup(tenant, int(priority), count, oldest))
        return out

    def ids(self, tenant_id: str, priority: int, *, after: str | None, limit: int) -> list[str]:
        """Queued ids of one group, oldest first, above ``after``."""
        lower = f"({after}" if after else "-"
        return cast(
            "list[str]",
            self._r.zrange(
                self._keys.queued_group(tenant_id, priority), lower, "+", bylex=True,
                offset=0, num=max(1, min(limit, MAX_PAGE)),
            ),
        )  # fmt: skip

    def _read_groups(self) -> tuple[list[tuple[str, int, str | None]], int]:
        pipe = self._r.pipeline(transaction=True)
        pipe.smembers(self._keys.queued_groups)
        pipe.zcard(self._keys.index("status:queued"))
        members, total = pipe.execute()
        names = sorted(cast("set[str]", members))
        if not names:
            return [], int(total)
        pipe = self._r.pipeline(transaction=True)
        for name in names:
            key = f"{self._keys.prefix}idx:fair:{name}"
            pipe.zcard(key)
            pipe.zrange(key, 0, 0)
        replies: list[Any] = pipe.execute()
        rows = [
            (name, int(replies[2 * i]), (replies[2 * i + 1] or [None])[0])
            for i, name in enumerate(names)
        ]
        return rows, int(total)

    def _catch_up(self) -> None:
        """Add queued jobs the index misses (created before it existed)."""
        upper = "+"
        while True:
            ids = cast(
                "list[str]",
                self._r.zrange(
                    self._keys.index("status:queued"), upper, "-", desc=True, bylex=True,
                    offset=0, num=MAX_PAGE,
                ),
            )  # fmt: skip
            if not ids:
                return
            self._heal(args=[self._keys.prefix, *ids])
            if len(ids) < MAX_PAGE:
                return
            upper = f"({ids[-1]}"
