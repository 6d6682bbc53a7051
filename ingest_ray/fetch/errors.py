"""The fetcher's errors: refusals and bad content are permanent, network trouble is retryable.

Every error carries the ``url`` (or local path) it is about and the HTTP ``status`` when a
server answered, so the ``pdf_fetch`` stage can record each attempt's outcome.
"""

from __future__ import annotations

from ingest_ray.errors import IngestError, PermanentError, RetryableError


class FetchError(IngestError):
    """Base of the fetcher's errors (never raised itself)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        job_id: str | None = None,
        stage: str | None = None,
    ) -> None:
        super().__init__(message, job_id=job_id, stage=stage, retry_after=retry_after)
        self.url = url
        self.status = status


class FetchRefusedError(FetchError, PermanentError):
    """The guard said no: scheme, credentials, a forbidden address, an unverified TLS peer."""


class TooManyRedirectsError(FetchRefusedError):
    """The redirect chain was longer than ``max_redirects``."""


class NotAPdfError(FetchError, PermanentError):
    """The body is not a PDF (no ``%PDF-`` in its first 1024 bytes), e.g. an HTML error page."""


class PdfTooLargeError(FetchError, PermanentError):
    """The body is (or announces itself as) larger than ``max_bytes``."""


class FetchNotFoundError(FetchError, PermanentError):
    """The document is gone: HTTP 404/410, an unknown host name, a missing local file."""


class FetchHttpError(FetchError, PermanentError):
    """Any other status that will not change by asking again (400, 401, 403, 451, ...)."""


class FetchFailedError(FetchError, RetryableError):
    """Worth trying again later: timeouts, connection errors, 5xx, 429 (with ``retry_after``)."""
