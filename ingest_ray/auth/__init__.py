"""Who is calling the job API: hashed API keys, JWT bearer tokens, scopes and tenant rate limits.

Nothing here speaks HTTP; ``serve_app`` translates these answers into 401/403/429.

Every name imports its module when first read (``ingest_ray.lazy``): ``tenants`` needs only
``auth.principal``, and a stage actor that imports ``tenants`` does not load PyJWT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest_ray.lazy import lazy_exports

if TYPE_CHECKING:
    from ingest_ray.auth.errors import (
        AuthError,
        ForbiddenError,
        NotAuthenticatedError,
        RateLimitedError,
    )
    from ingest_ray.auth.keys import ApiKeyInfo, ApiKeyStore, AsyncApiKeyStore, hash_key
    from ingest_ray.auth.principal import ALL_SCOPES, Principal, Scope, parse_scopes
    from ingest_ray.auth.ratelimit import TenantRateLimiter
    from ingest_ray.auth.tokens import JwtVerifier

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AuthError": "errors",
        "ForbiddenError": "errors",
        "NotAuthenticatedError": "errors",
        "RateLimitedError": "errors",
        "ApiKeyInfo": "keys",
        "ApiKeyStore": "keys",
        "AsyncApiKeyStore": "keys",
        "hash_key": "keys",
        "ALL_SCOPES": "principal",
        "Principal": "principal",
        "Scope": "principal",
        "parse_scopes": "principal",
        "TenantRateLimiter": "ratelimit",
        "JwtVerifier": "tokens",
    },
)

__all__ = [
    "ALL_SCOPES",
    "ApiKeyInfo",
    "ApiKeyStore",
    "AsyncApiKeyStore",
    "AuthError",
    "ForbiddenError",
    "JwtVerifier",
    "NotAuthenticatedError",
    "Principal",
    "RateLimitedError",
    "Scope",
    "TenantRateLimiter",
    "hash_key",
    "parse_scopes",
]
