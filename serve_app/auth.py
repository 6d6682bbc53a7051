"""Who is calling, for route handlers: credentials -> principal -> scope check -> rate limit.

Credentials are ``Authorization: Bearer <api key or JWT>`` or ``X-API-Key: <api key>``. API keys
(``irk_...``) are looked up by hash; anything else in a bearer header is tried as a JWT when a JWT
key is configured. Refusals raise the errors of :mod:`ingest_ray.auth` (401, 403, 429).
"""

from __future__ import annotations

from starlette.requests import Request

from ingest_ray.auth import (
    ForbiddenError,
    NotAuthenticatedError,
    Principal,
    RateLimitedError,
    Scope,
)
from ingest_ray.auth.keys import KEY_PREFIX
from serve_app.context import ApiContext


def context(request: Request) -> ApiContext:
    """The replica's shared resources."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _credential(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NotAuthenticatedError("Authorization must be 'Bearer <api key or token>'")
        return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


async def authenticate(request: Request) -> Principal:
    """The verified caller, or :class:`NotAuthenticatedError`."""
    ctx = context(request)
    credential = _credential(request)
    if credential is None:
        raise NotAuthenticatedError("credentials required (Authorization: Bearer or X-API-Key)")
    principal: Principal | None = None
    if credential.startswith(KEY_PREFIX):
        principal = await ctx.keys.verify(credential)
    elif ctx.jwt is not None:
        principal = ctx.jwt.verify(credential)
    if principal is None:
        raise NotAuthenticatedError("invalid, expired or revoked credentials")
    return principal


async def authorize(request: Request, scope: Scope) -> Principal:
    """The caller if it holds ``scope`` and its tenant has request budget left."""
    principal = await authenticate(request)
    if not principal.has(scope):
        raise ForbiddenError(f"this operation needs the {scope.value} scope")
    wait = await context(request).limiter.take(principal.tenant_id)
    if wait > 0:
        raise RateLimitedError(
            f"rate limit for tenant {principal.tenant_id} exceeded", retry_after=wait
        )
    return principal
