"""Errors of the scholarly API adapters, on the engine's retryable/permanent split.

Each carries the ``source`` (``openalex``, ``unpaywall``, ``core``) and, where the server said
one, the HTTP ``status``; rate limits and outages carry the server's ``retry_after``.
"""

from __future__ import annotations

from typing import Any

from ingest_ray.errors import IngestError, PermanentError, RetryableError


class _Picklable(IngestError):
    """Keeps ``source``/``status``/``retry_after`` when Ray pickles the error to another process."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,), self.__dict__)


class UpstreamUnavailableError(_Picklable, RetryableError):
    """Timeout, connection error or 5xx: the API may answer if asked again later."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.source = source
        self.status = status


class UpstreamRateLimitedError(UpstreamUnavailableError):
    """HTTP 429: we asked too often; wait ``retry_after`` seconds when given."""


class RateLimitWaitError(RetryableError):
    """No rate-limit token came free within the allowed wait; try the job again later."""


class UpstreamRejectedError(_Picklable, PermanentError):
    """A 4xx other than 404/408/429 (bad request, bad key): asking again will not help."""

    def __init__(self, message: str, *, source: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.status = status


class UpstreamNotFoundError(UpstreamRejectedError):
    """HTTP 404/410: the API does not know this identifier."""


class WorkNotFoundError(UpstreamNotFoundError):
    """OpenAlex has no work for this DOI or id."""


class UpstreamResponseError(_Picklable, PermanentError):
    """A 2xx whose body is not the JSON shape the API documents."""

    def __init__(self, message: str, *, source: str = "") -> None:
        super().__init__(message)
        self.source = source


class UnsupportedSourceError(PermanentError):
    """The stage cannot work on this kind of document source."""


class NoOpenAccessRetryableError(RetryableError):
    """Every PDF candidate failed and at least one failure may go away: retry the stage later."""


class InvalidIdentifierError(PermanentError):
    """The DOI or OpenAlex id given cannot be valid, so no API is asked."""
