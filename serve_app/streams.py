"""Async reads of a job's event stream, straight from the Redis ledger's keys.

The Redis ledger appends every transition to ``{prefix}job:{id}:events`` (stream ids ``seq-0``,
field ``e`` = the event JSON) in the same Lua step that moves the job, so once a job's status is
terminal every event up to that transition is in the stream.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from ingest_ray.errors import DamagedRecordError
from ingest_ray.keys import RedisKeys
from ingest_ray.ledger.base import JobEvent
from ingest_ray.states import JobStatus


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse_event(raw: str | bytes) -> JobEvent:
    """A stored event (``at`` in epoch ms; Lua's cjson writes an empty object as ``[]``)."""
    data: dict[str, Any] = json.loads(raw)
    data["at"] = datetime.fromtimestamp(int(data["at"]) / 1000, UTC)
    if data.get("data") == []:
        data["data"] = {}
    return JobEvent.model_validate(data)


class EventReader:
    """Reads job heads and event streams on the replica's shared asyncio Redis pool."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, poll_s: float = 0.5) -> None:
        self._r = client
        self._prefix = prefix
        self.poll_s = poll_s

    def _key(self, job_id: str) -> str:
        return RedisKeys(self._prefix).job(job_id)

    async def head(self, job_id: str) -> tuple[str, JobStatus] | None:
        """The job's tenant and status, or ``None`` when there is no such job; a record Redis
        cannot read as a hash raises :class:`DamagedRecordError` (an API 500 naming the job)."""
        try:
            tenant, status = await self._r.hmget(self._key(job_id), ["tenant_id", "status"])
        except ResponseError as exc:
            raise DamagedRecordError(f"job {job_id}: damaged record: {exc}", job_id=job_id) from exc
        if tenant is None or status is None:
            return None
        return _text(tenant), JobStatus(_text(status))

    async def after(self, job_id: str, seq: int, *, count: int = 100) -> list[JobEvent]:
        """Events with ``seq`` greater than ``seq``, oldest first."""
        entries = await self._r.xrange(
            RedisKeys(self._prefix).events(job_id), f"({seq}-0", "+", count=count
        )
        out = []
        for _, fields in cast("list[tuple[Any, dict[Any, Any]]]", entries or []):
            raw = fields.get(b"e", fields.get("e"))
            if raw is not None:
                out.append(parse_event(raw))
        return out

    async def wait(self, job_id: str, after_seq: int, timeout: float) -> bool:
        """Return when the job may have an event after ``after_seq``: here after
        ``min(timeout, poll_s)`` (a polled read; a blocking ``XREAD`` per open stream would hold
        one of the replica's pooled connections for each). Answers True."""
        del job_id, after_seq
        await asyncio.sleep(min(timeout, self.poll_s))
        return True
