"""Who is calling the job API: hashed API keys, JWT bearer tokens, scopes and tenant rate limits.

Nothing here speaks HTTP; ``serve_app`` translates these answers into 401/403/429.
"""

from __future__ import annotations

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
