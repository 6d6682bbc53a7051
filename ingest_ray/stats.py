"""Figures for the dashboard's charts, computed from ledger pages and worker heartbeats.

Pure functions (no I/O): the API reads the jobs and heartbeats and passes them in.

- completed jobs per minute over a recent window, from the newest completed jobs;
- queue depth by priority, from the queued jobs;
- pool sizes and utilisation, from the newest live heartbeat of an ingest worker. A worker's
  ``details`` hold ``pool_<name>`` (the pool's size in actors) and, where the worker reports
  them, ``pool_<name>_in_flight`` and ``pool_<name>_capacity`` (calls running and the most that
  may run); utilisation is their ratio, unknown without them. A ``pools`` mapping of
  ``{name: {"size", "in_flight", "capacity"}}`` is read the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ingest_ray.ledger.base import Job
from ingest_ray.workers.base import WorkerHealth

PRIORITIES = range(10)


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Jobs completed in the minute starting at ``minute``."""

    minute: datetime
    count: int


@dataclass(frozen=True, slots=True)
class PoolFigure:
    """One stage pool: actors, calls in flight, most calls at once, their ratio."""

    name: str
    size: int
    in_flight: int | None
    capacity: int | None
    utilisation: float | None


def completed_per_minute(
    jobs: Iterable[Job], now: datetime, minutes: int = 30
) -> list[MinuteCount]:
    """One entry per minute of the last ``minutes`` (oldest first), the current one included."""
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=minutes - 1)
    counts: Counter[datetime] = Counter()
    for job in jobs:
        done = job.finished_at
        if done is None:
            continue
        minute = done.astimezone(now.tzinfo).replace(second=0, microsecond=0)
        if start <= minute <= end:
            counts[minute] += 1
    return [
        MinuteCount(start + timedelta(minutes=i), counts[start + timedelta(minutes=i)])
        for i in range(minutes)
    ]


def queue_by_priority(jobs: Iterable[Job]) -> dict[int, int]:
    """Queued jobs per priority, 0 (low) to 9 (high), zeros included."""
    counts = Counter(job.priority for job in jobs)
    return {p: counts.get(p, 0) for p in PRIORITIES}


def pool_figures(heartbeats: Iterable[WorkerHealth]) -> list[PoolFigure]:
    """The pools of the newest live ingest worker that reports any, by name."""
    live = [h for h in heartbeats if h.alive and h.kind == "ingest" and _pools(h.details)]
    if not live:
        return []
    newest = max(live, key=lambda h: h.updated_at)
    return [_figure(name, fields) for name, fields in sorted(_pools(newest.details).items())]


def _pools(details: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    nested = details.get("pools")
    if isinstance(nested, Mapping):
        for name, fields in nested.items():
            if isinstance(fields, Mapping):
                found[str(name)] = dict(fields)
    for key, value in details.items():
        if not key.startswith("pool_") or not isinstance(value, int | float):
            continue
        name, field = key[5:], "size"
        for suffix in ("in_flight", "capacity"):
            if name.endswith(f"_{suffix}"):
                name, field = name[: -len(suffix) - 1], suffix
        found.setdefault(name, {}).setdefault(field, value)
    return {name: fields for name, fields in found.items() if "size" in fields}


def _figure(name: str, fields: Mapping[str, Any]) -> PoolFigure:
    size = int(fields.get("size") or 0)
    in_flight = _int(fields.get("in_flight"))
    capacity = _int(fields.get("capacity"))
    ratio = None
    if in_flight is not None and capacity:
        ratio = round(min(1.0, in_flight / capacity), 4)
    return PoolFigure(name, size, in_flight, capacity, ratio)


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
