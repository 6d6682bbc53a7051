"""Shared HTTP plumbing of the adapters: one ``httpx.AsyncClient`` per client instance, the
source's rate limit before every request, tenacity retries with exponential backoff and jitter,
``Retry-After`` honoured, and HTTP outcomes mapped onto typed retryable/permanent errors.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

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
Sleep = Callable[[float], Awaitable[None]]

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


class _RetryWait(wait_base):
    """The server's ``Retry-After`` when it sent one, else exponential backoff with jitter:
    ``min(max, initial * 2**(n-1) + uniform(0, initial))`` before retry ``n``."""

    def __init__(self, settings: AdapterSettings) -> None:
        self._initial = settings.backoff_initial_s
        self._max = settings.backoff_max_s

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, UpstreamUnavailableError) and exc.retry_after is not None:
            return exc.retry_after
        exponent = min(retry_state.attempt_number - 1, 32)
        jitter = random.uniform(0, self._initial)  # noqa: S311 - jitter, not crypto
        return min(self._max, self._initial * 2.0**exponent + jitter)


class ApiClient:
    """Base of the OpenAlex, Unpaywall and CORE clients: GET JSON, limited and retried."""

    source: ClassVar[str] = "api"

    def __init__(
        self,
        settings: AdapterSettings,
        *,
        base_url: str,
        limiter: RateLimiter | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.settings = settings
        self._limiter: RateLimiter = limiter or NullRateLimiter()
        self._sleep = sleep
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

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, UpstreamUnavailableError):
            return False
        return exc.retry_after is None or exc.retry_after <= self.settings.max_inline_retry_after_s

    def _retrying(self) -> AsyncRetrying:
        kwargs: dict[str, Any] = {} if self._sleep is None else {"sleep": self._sleep}
        return AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=_RetryWait(self.settings),
            retry=retry_if_exception(self._should_retry),
            reraise=True,
            **kwargs,
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
        """GET ``path`` (already percent-encoded) and decode its JSON body, with retries."""
        async for attempt in self._retrying():
            with attempt:
                response = await self._get_once(path, params or {})
                raise_for_status(response, source=self.source, not_found=not_found)
                try:
                    return json.loads(response.content)
                except ValueError as exc:
                    raise UpstreamResponseError(
                        f"{self.source}: GET {path} returned a body that is not JSON",
                        source=self.source,
                    ) from exc
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
