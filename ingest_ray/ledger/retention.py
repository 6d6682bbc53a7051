"""Retention of finished jobs: an age for every tenant, ages of its own for some tenants.

:func:`apply_retention` prunes each tenant that has its own age with that age, then every other
tenant with the default age (tenants with their own age are excluded from that pass, so a
longer age of a tenant is never cut short by a shorter default). Pure logic over the ledger
protocol, run by ``ingest-ray ledger prune`` (e.g. from cron).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_ray.errors import ConfigurationError
from ingest_ray.ledger.base import Ledger

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` as a timedelta (a clear error otherwise)."""
    match = _AGE.match(text)
    if match is None:
        raise ConfigurationError(
            f"not an age: {text!r} (use a number and a unit: 30d, 12h, 90m, 2w, 45s)"
        )
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long finished jobs are kept: ``default`` for all (None: forever), ``by_tenant``
    overrides for some tenants."""

    default: timedelta | None = None
    by_tenant: Mapping[str, timedelta] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        """From ``ledger_retention_days`` and ``ledger_retention_days_by_tenant``."""
        days = settings.ledger_retention_days
        return cls(
            default=timedelta(days=days) if days is not None else None,
            by_tenant={
                t: timedelta(days=d) for t, d in settings.ledger_retention_days_by_tenant.items()
            },
        )

    def cutoffs(self, now: datetime) -> list[tuple[str | None, datetime]]:
        """(tenant or None for the rest, finished-before cutoff) pairs to prune with."""
        out: list[tuple[str | None, datetime]] = [
            (tenant, now - age) for tenant, age in sorted(self.by_tenant.items())
        ]
        if self.default is not None:
            out.append((None, now - self.default))
        return out


def apply_retention(
    ledger: Ledger, policy: RetentionPolicy, *, now: datetime | None = None
) -> dict[str, int]:
    """Prune by ``policy``; answers jobs deleted per tenant (``*`` for the default pass)."""
    moment = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    for tenant, cutoff in policy.cutoffs(moment):
        if tenant is None:
            n = ledger.prune(cutoff, exclude_tenants=sorted(policy.by_tenant))
        else:
            n = ledger.prune(cutoff, tenant_id=tenant)
        deleted[tenant or "*"] = n
    return deleted
