"""Consumers drop events they already applied: the outbox (and Kafka) deliver at least once,
and every message carries a stable ``event_id``. Marks live in Redis with a time to live."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from ingest_ray.keys import RedisKeys

#: How long an applied event id is remembered (redeliveries happen within minutes).
DEFAULT_TTL_S = 7 * 24 * 3600


class AppliedEvents:
    """The event ids one consumer (``scope``) has applied."""

    def __init__(
        self, client: redis.Redis, keys: RedisKeys, scope: str, *, ttl_s: int = DEFAULT_TTL_S
    ) -> None:
        self._r = client
        self._keys = keys
        self._scope = scope
        self._ttl_s = ttl_s

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` were applied already."""
        if not event_ids:
            return set()
        pipe = self._r.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.exists(self._keys.applied(self._scope, event_id))
        return {e for e, hit in zip(event_ids, pipe.execute(), strict=True) if hit}

    def mark(self, event_ids: Sequence[str]) -> None:
        """Remember ``event_ids`` as applied."""
        if not event_ids:
            return
        pipe = self._r.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(self._keys.applied(self._scope, event_id), 1, ex=self._ttl_s)
        pipe.execute()
