"""Errors of authentication, authorisation and rate limiting (mapped to 401, 403 and 429)."""

from __future__ import annotations

from ingest_ray.errors import PermanentError, RetryableError


class AuthError(PermanentError):
    """Base of the refusals this package decides."""


class NotAuthenticatedError(AuthError):
    """No credentials, or credentials that do not verify (unknown, revoked, expired key/token)."""


class ForbiddenError(AuthError):
    """The caller is known but lacks the scope the operation needs."""


class RateLimitedError(RetryableError):
    """The tenant spent its request budget; ``retry_after`` says when a token is free again."""
