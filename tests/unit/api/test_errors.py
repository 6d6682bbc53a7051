"""Error translation: engine and auth errors to status codes and one body shape (no services)."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from ingest_ray.auth import ForbiddenError, NotAuthenticatedError, RateLimitedError
from ingest_ray.errors import (
    IllegalTransitionError,
    JobNotFoundError,
    ServiceUnavailableError,
    StaleTransitionError,
)
from serve_app.errors import (
    PayloadTooLargeError,
    RequestValidationError,
    UnsupportedMediaTypeError,
    ingest_error,
)
from serve_app.routes.events import last_event_id
from serve_app.schemas import SubmitItem


def _request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/x", "headers": raw,
                    "query_string": query.encode()})  # fmt: skip


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotAuthenticatedError("no"), 401, "unauthorized"),
        (ForbiddenError("no"), 403, "forbidden"),
        (JobNotFoundError("no job x", job_id="x"), 404, "not_found"),
        (IllegalTransitionError("done"), 409, "conflict"),
        (StaleTransitionError("moved", job_id="x"), 409, "conflict"),
        (PayloadTooLargeError("big"), 413, "payload_too_large"),
        (UnsupportedMediaTypeError("xml"), 415, "unsupported_media_type"),
        (RateLimitedError("slow down", retry_after=2.2), 429, "rate_limited"),
        (ServiceUnavailableError("redis away"), 503, "service_unavailable"),
    ],
)
def test_errors_map_to_status_and_shape(error: Exception, status: int, code: str) -> None:
    response = asyncio.run(ingest_error(_request(), error))
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert body == {"error": {"code": code, "message": str(error)}}
    if status == 429:
        assert response.headers["Retry-After"] == "3"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_errors_redis_outage_is_503_with_retry_after() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from serve_app.errors import redis_unavailable

    response = asyncio.run(redis_unavailable(_request(), RedisConnectionError("refused")))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert json.loads(bytes(response.body))["error"]["code"] == "service_unavailable"


def test_errors_validation_message_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        SubmitItem.model_validate({"source": {"kind": "text", "value": "x"}, "status": "done"})
    error = RequestValidationError.from_pydantic(caught.value, "body")
    assert error.message.startswith("body.status:")
    assert error.details and error.details[0]["loc"] == ["body", "status"]


def test_last_event_id_from_header_or_query() -> None:
    assert last_event_id(_request()) == 0
    assert last_event_id(_request({"Last-Event-ID": "7"})) == 7
    assert last_event_id(_request(query="last_event_id=4")) == 4
    assert last_event_id(_request({"Last-Event-ID": "9"}, "last_event_id=4")) == 9
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(RequestValidationError):
            last_event_id(_request({"Last-Event-ID": bad}))
