"""The authenticated caller: a tenant, the scopes it was granted and where they came from."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: Same alphabet as :class:`ingest_ray.events.IngestRequest.tenant_id`.
TENANT_PATTERN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Scope(StrEnum):
    """What a credential may do."""

    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    JOBS_CANCEL = "jobs:cancel"


ALL_SCOPES: Final = frozenset(Scope)


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from a space/comma separated string or an iterable; raise ``ValueError`` on an
    unknown one (a typo must not silently grant less than intended)."""
    names = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    unknown = sorted({n for n in names if n not in {s.value for s in Scope}})
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {_known()}")
    return frozenset(Scope(n) for n in names)


def known_scopes(scopes: str) -> frozenset[Scope]:
    """The recognised scopes of a token's ``scope`` claim; unknown ones are ignored."""
    return frozenset(Scope(n) for n in scopes.split() if n in {s.value for s in Scope})


def check_tenant(tenant_id: str) -> str:
    """``tenant_id`` unchanged, or ``ValueError`` when it is not a valid tenant name."""
    if not TENANT_PATTERN.match(tenant_id):
        raise ValueError(f"invalid tenant {tenant_id!r} (letters, digits, . _ : - ; 1..128)")
    return tenant_id


def _known() -> str:
    return ", ".join(s.value for s in Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every job operation is confined to ``tenant_id``."""

    tenant_id: str
    scopes: frozenset[Scope]
    key_id: str | None = None
    subject: str | None = None

    def has(self, scope: Scope) -> bool:
        """Whether the caller was granted ``scope``."""
        return scope in self.scopes
