"""HTTP errors of the API and the handlers turning every error into ``{"error": {...}}``.

Engine errors keep their meaning: not found -> 404, illegal or stale transition -> 409, a service
away -> 503, a job record the ledger cannot read or write -> 500 ``damaged_record``;
authentication -> 401, scope -> 403, rate limit -> 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from ingest_ray.admission import UnknownPipelineError
from ingest_ray.auth import ForbiddenError, NotAuthenticatedError, RateLimitedError
from ingest_ray.errors import (
    DamagedRecordError,
    IllegalTransitionError,
    IngestError,
    JobNotFoundError,
    PermanentError,
    RetryableError,
    StaleTransitionError,
)
from serve_app.schemas import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)


class ApiError(PermanentError):
    """A request the API refuses; ``status`` and ``code`` go on the wire."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details


class BadRequestError(ApiError):
    """The body is not what the content type says (e.g. malformed JSON)."""


class PayloadTooLargeError(ApiError):
    """The body exceeds the JSON or upload cap."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(ApiError):
    """Neither JSON nor a multipart upload, or an upload that is not a PDF."""

    status = 415
    code = "unsupported_media_type"


class NotFoundError(ApiError):
    """Nothing the caller may see is there (another tenant's things are not found either)."""

    status = 404
    code = "not_found"


class ConflictError(ApiError):
    """The request cannot be done in the current state (e.g. a dead letter that cannot be
    replayed as it is)."""

    status = 409
    code = "conflict"


class RequestValidationError(ApiError):
    """The body or query does not match the schema."""

    status = 422
    code = "validation_error"

    @classmethod
    def from_pydantic(cls, exc: ValidationError, where: str) -> RequestValidationError:
        """A readable message and per-field details from a pydantic error."""
        details = [
            {"loc": [where, *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        first = details[0] if details else {"loc": [where], "msg": "invalid"}
        path = ".".join(str(p) for p in first["loc"])
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return cls(f"{path}: {first['msg']}{more}", details=details)


_STATUS: list[tuple[type[Exception], int, str]] = [
    (NotAuthenticatedError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (JobNotFoundError, 404, "not_found"),
    (IllegalTransitionError, 409, "conflict"),
    (StaleTransitionError, 409, "conflict"),
    (UnknownPipelineError, 422, "validation_error"),
    (RateLimitedError, 429, "rate_limited"),
    (RetryableError, 503, "service_unavailable"),
    (DamagedRecordError, 500, "damaged_record"),
]

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error shape of the API."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


async def ingest_error(request: Request, exc: Exception) -> Response:
    """Map an :class:`IngestError` to its status code."""
    assert isinstance(exc, IngestError)
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, details=exc.details)
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            if status >= 500:
                log.warning("%s on %s: %s", code, request.url.path, exc.message)
            return error_response(status, code, exc.message, headers=_headers(exc, status))
    log.warning("unmapped engine error on %s: %r", request.url.path, exc)
    return error_response(400 if not exc.retryable else 503, "error", exc.message)


def _headers(exc: IngestError, status: int) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": 'Bearer realm="ingest-ray"'}
    if status in (429, 503):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after or 1)))}
    return None


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in the API's error shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(
        exc.status_code, code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None
    )


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    """Redis did not answer: the request may succeed later (503 + Retry-After)."""
    log.warning("redis unavailable on %s: %r", request.url.path, exc)
    return error_response(
        503, "service_unavailable", "the job store is unavailable", headers={"Retry-After": "1"}
    )


async def server_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: log it, answer 500 without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    IngestError: ingest_error,
    HTTPException: http_error,
    RedisConnectionError: redis_unavailable,
    RedisTimeoutError: redis_unavailable,
    Exception: server_error,
}
