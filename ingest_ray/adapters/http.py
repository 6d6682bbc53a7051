"""Shared HTTP plumbing of the adapters: one ``httpx.AsyncClient`` per client instance, the
source's rate limit before every request, and HTTP outcomes mapped onto typed errors.

One request per call, never a retry inside it: a 429 or 503 (with the server's ``Retry-After``),
a 5xx, a timeout or a connection error becomes a retryable error carrying ``retry_after`` and
goes back to the runtime, whose retry waits in the Dispatcher's timer heap (``retry.py`` is the
one backoff formula), so a stage never sleeps on its worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ingest_ray.adapters.errors import (
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamResponseError,
    UpstreamUnavailableError,
)
from ingest_ray.adapters.ratelimit import NullRateLimiter, RateLimiter
from ingest_ray.adapters.settings import AdapterSettings

ModelT = TypeVar("ModelT", bound=BaseModel)

_RETRYABLE_4XX = frozenset({408, 425, 429})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def parse_model(model: type[ModelT], data: Any, *, source: str) -> ModelT:
    """Validate an API payload; a shape we cannot read is a permanent error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UpstreamResponseError(
            f"{source}: unexpected response shape: {exc.error_count()} errors", source=source
        ) from exc


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "")[:200]
    return ""


def raise_for_status(
    response: httpx.Response,
    *,
    source: str,
    not_found: type[UpstreamNotFoundError] = UpstreamNotFoundError,
) -> None:
    """Map a non-2xx response onto the adapters' error tree."""
    status = response.status_code
    if status < 400:
        return
    what = f"{source}: GET {response.request.url.path} answered {status}"
    detail = _message(response)
    text = f"{what}: {detail}" if detail else what
    if status in (404, 410):
        raise not_found(text, source=source, status=status)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        raise UpstreamRateLimitedError(text, source=source, status=status, retry_after=retry_after)
    if status >= 500 or status in _RETRYABLE_4XX:
        raise UpstreamUnavailableError(text, source=source, status=status, retry_after=retry_after)
    raise UpstreamRejectedError(text, source=source, status=status)


class ApiClient:
    """Base of the OpenAlex, Unpaywall and CORE clients: GET JSON, one limited request."""

    source: ClassVar[str] = "api"

    def __init__(
        self,
        settings: AdapterSettings,
        *,
        base_url: str,
        limiter: RateLimiter | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._limiter: RateLimiter = limiter or NullRateLimiter()
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=settings.http_timeout_s,
            headers={
                "User-Agent": settings.user_agent,
                "Accept": "application/json",
                **(headers or {}),
            },
            transport=transport,
            follow_redirects=True,
        )

    async def _get_once(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        await self._limiter.acquire(self.source)
        try:
            return await self._client.get(path, params=params)
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(
                f"{self.source}: GET {path} timed out", source=self.source
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(
                f"{self.source}: GET {path} failed: {type(exc).__name__}: {exc}",
                source=self.source,
            ) from exc

    async def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        not_found: type[UpstreamNotFoundError] = UpstreamNotFoundError,
    ) -> Any:
        """GET ``path`` (already percent-encoded) once and decode its JSON body; a refusal or
        an outage raises a typed error (retryable ones carry the server's ``retry_after``)."""
        response = await self._get_once(path, params or {})
        raise_for_status(response, source=self.source, not_found=not_found)
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise UpstreamResponseError(
                f"{self.source}: GET {path} returned a body that is not JSON", source=self.source
            ) from exc

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
