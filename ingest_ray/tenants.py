"""Tenants' scheduling limits, and the admission snapshot that shows how each tenant fares.

A tenant's limits are its ``weight`` (its fair share against the other tenants with work waiting
at the same priority), ``max_in_flight`` (jobs started and not finished) and ``jobs_per_hour``
(jobs started in any hour). Defaults come from the settings (``INGEST_RAY_TENANT_DEFAULT``,
``INGEST_RAY_TENANT_LIMITS``); ``ingest-ray tenant set`` stores a tenant's own limits in Redis
(``RedisKeys.tenant_limits``), which the Dispatcher re-reads every few seconds, so a change
applies without a restart. A job its tenant may not start now stays queued, never dropped; the
reason shows in the snapshot, ``ingest-ray status --tenants``, ``GET /tenants`` and the job's
``admission`` note in ``GET /jobs/{id}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest_ray.auth.principal import check_tenant
from ingest_ray.errors import PermanentError
from ingest_ray.keys import RedisKeys

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)
MAX_WEIGHT = 1000.0


class TenantLimitsError(PermanentError):
    """Limits that cannot apply (a weight <= 0, a cap below 1, a bad tenant name)."""


class TenantLimits(BaseModel):
    """One tenant's share and caps; ``None`` means no cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight: float = Field(default=1.0, gt=0, le=MAX_WEIGHT)
    max_in_flight: int | None = Field(default=None, ge=1)
    jobs_per_hour: int | None = Field(default=None, ge=1)

    def describe(self) -> str:
        """``weight 2, at most 50 in flight, 1000 jobs/h``."""
        parts = [f"weight {self.weight:g}"]
        parts.append(f"at most {self.max_in_flight} in flight" if self.max_in_flight else "")
        parts.append(f"{self.jobs_per_hour} jobs/h" if self.jobs_per_hour else "")
        return ", ".join(p for p in parts if p)


def check_changes(
    *, weight: float | None, max_in_flight: int | None, jobs_per_hour: int | None
) -> None:
    """Refuse values that cannot apply, with a message that says which and why."""
    if weight is not None and not 0 < weight <= MAX_WEIGHT:
        raise TenantLimitsError(f"weight must be > 0 and <= {MAX_WEIGHT:g}, got {weight:g}")
    if max_in_flight is not None and max_in_flight < 1:
        raise TenantLimitsError(f"max-in-flight must be at least 1, got {max_in_flight}")
    if jobs_per_hour is not None and jobs_per_hour < 1:
        raise TenantLimitsError(f"jobs-per-hour must be at least 1, got {jobs_per_hour}")


def parse_limits(tenant: str, raw: str | bytes) -> TenantLimits | None:
    """A stored record, or ``None`` (logged) when it is unreadable: that tenant then runs on
    the defaults rather than the Dispatcher failing."""
    try:
        return TenantLimits.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("tenant %s: unreadable limits record ignored: %s", tenant, exc)
        return None


def parse_all(raw: Mapping[Any, Any]) -> dict[str, TenantLimits]:
    """Every readable record of the limits hash."""
    out: dict[str, TenantLimits] = {}
    for key, value in raw.items():
        tenant = key.decode() if isinstance(key, bytes) else str(key)
        limits = parse_limits(tenant, value)
        if limits is not None:
            out[tenant] = limits
    return out


class TenantStore:
    """The tenants' own limits in Redis (the CLI's side; the Dispatcher reads the same hash)."""

    def __init__(self, client: redis.Redis, prefix: str = "ir:") -> None:
        self._r = client
        self._key = RedisKeys(prefix).tenant_limits

    def all(self) -> dict[str, TenantLimits]:
        """Every tenant with limits of its own."""
        return parse_all(cast("dict[Any, Any]", self._r.hgetall(self._key)))

    def get(self, tenant: str) -> TenantLimits | None:
        """``tenant``'s own limits, ``None`` when it has none."""
        raw = self._r.hget(self._key, tenant)
        return None if raw is None else parse_limits(tenant, raw)

    def set(
        self,
        tenant: str,
        *,
        default: TenantLimits,
        weight: float | None = None,
        max_in_flight: int | None = None,
        jobs_per_hour: int | None = None,
    ) -> tuple[TenantLimits, bool]:
        """Change ``tenant``'s limits; a tenant without a record starts from ``default``.
        Answers the limits now stored and whether the record was created."""
        try:
            check_tenant(tenant)
        except ValueError as exc:
            raise TenantLimitsError(str(exc)) from exc
        check_changes(weight=weight, max_in_flight=max_in_flight, jobs_per_hour=jobs_per_hour)
        current = self.get(tenant)
        changes = {
            k: v
            for k, v in {
                "weight": weight,
                "max_in_flight": max_in_flight,
                "jobs_per_hour": jobs_per_hour,
            }.items()
            if v is not None
        }
        limits = (current or default).model_copy(update=changes)
        self._r.hset(self._key, tenant, limits.model_dump_json())
        return limits, current is None

    def clear(self, tenant: str, *fields: str) -> TenantLimits | None:
        """Remove caps (``max_in_flight``, ``jobs_per_hour``) or, without fields, the whole
        record (the tenant falls back to the defaults). Answers what is stored now."""
        if not fields:
            self._r.hdel(self._key, tenant)
            return None
        current = self.get(tenant)
        if current is None:
            return None
        limits = current.model_copy(update=dict.fromkeys(fields))
        self._r.hset(self._key, tenant, limits.model_dump_json())
        return limits


# --- the admission snapshot -------------------------------------------------------------------


class TenantStats(BaseModel):
    """How one tenant fares in one runtime right now."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    weight: float
    max_in_flight: int | None
    jobs_per_hour: int | None
    #: jobs started and not finished
    in_flight: int
    #: jobs held by the Dispatcher, waiting for a worker, a retry time or a token
    waiting: int
    #: jobs started in the last hour
    quota_used: int
    #: this tenant's part of the dispatches of the last minute, and what its weight entitles it
    #: to among the tenants with work
    share: float
    fair_share: float
    #: seconds jobs waited in the ready queues before dispatch (recent jobs)
    wait_p50_s: float | None
    wait_p99_s: float | None
    #: why new jobs of this tenant do not start now (at its cap, over its quota), or ``None``
    blocked: str | None = None


class SourceStats(BaseModel):
    """A rate-limited source jobs wait for."""

    model_config = ConfigDict(frozen=True)

    source: str
    rate_per_s: float
    waiting: int
    tokens: int
    next_token_in_s: float | None
    granted: int
    throttled: int


class AdmissionSnapshot(BaseModel):
    """What a Dispatcher publishes every second (``RedisKeys.admission``)."""

    model_config = ConfigDict(frozen=True)

    runtime: str
    at: float
    tenants: dict[str, TenantStats] = Field(default_factory=dict)
    sources: dict[str, SourceStats] = Field(default_factory=dict)
    #: queued jobs the Dispatcher does not hold (the ledger's backlog)
    backlog: int = 0
    error: str | None = None

    def note_for(self, tenant_id: str, source: str | None = None) -> str | None:
        """Why a queued job of ``tenant_id`` (whose next try needs ``source``) is waiting."""
        stats = self.tenants.get(tenant_id)
        if stats is not None and stats.blocked:
            return stats.blocked
        waits = self.sources.get(source) if source else None
        if waits is not None and waits.waiting:
            return f"waiting for a {source} rate-limit token ({waits.waiting} jobs waiting)"
        return None


def read_snapshot(client: redis.Redis, prefix: str, runtime: str) -> AdmissionSnapshot | None:
    """The last snapshot the runtime's Dispatcher published, ``None`` when there is none."""
    raw = client.get(RedisKeys(prefix).admission(runtime))
    return None if raw is None else parse_snapshot(raw)


def parse_snapshot(raw: str | bytes) -> AdmissionSnapshot | None:
    """A snapshot from its JSON (``None`` when unreadable)."""
    try:
        return AdmissionSnapshot.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None
