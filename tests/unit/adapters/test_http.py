"""One request per call, Retry-After and error mapping, through the real clients against the
replay server; the retry itself is the runtime's."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import httpx
import pytest

from ingest_ray.adapters.errors import (
    RateLimitWaitError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
    WorkNotFoundError,
)
from ingest_ray.adapters.http import parse_retry_after, raise_for_status
from ingest_ray.adapters.openalex import OpenAlexClient
from ingest_ray.adapters.ratelimit import (
    Grant,
    LocalRateLimiter,
    RateLimiter,
    RateSpec,
    reserved_tokens,
)
from ingest_ray.adapters.replay import ReplayServer, adapter_settings_for
from ingest_ray.adapters.settings import AdapterSettings
from ingest_ray.retry import RetryPolicy
from ingest_ray.runtime.work import StageFailure

PLOS = "10.1371/journal.pone.0000030"


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1/works/W1")
    return httpx.Response(status, headers=headers, json={"message": "nope"}, request=request)


def test_parse_retry_after_reads_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, UpstreamNotFoundError),
        (410, UpstreamNotFoundError),
        (429, UpstreamRateLimitedError),
        (500, UpstreamUnavailableError),
        (503, UpstreamUnavailableError),
        (408, UpstreamUnavailableError),
        (400, UpstreamRejectedError),
        (401, UpstreamRejectedError),
    ],
)
def test_raise_for_status_maps_status_to_error_kind(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        raise_for_status(_response(status), source="openalex")
    assert type(info.value) is error
    assert info.value.status == status  # type: ignore[attr-defined]


def test_raise_for_status_carries_retry_after_of_503() -> None:
    with pytest.raises(UpstreamUnavailableError) as info:
        raise_for_status(_response(503, {"Retry-After": "12"}), source="core")
    assert info.value.retryable
    assert info.value.retry_after == 12.0


def _get(
    settings: AdapterSettings, doi: str = PLOS, limiter: RateLimiter | None = None
) -> str | None:
    async def main() -> str | None:
        client = OpenAlexClient(settings, limiter=limiter)
        try:
            return (await client.get_work_by_doi(doi)).title
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_client_gives_a_429_back_at_once_with_its_retry_after(
    replay: ReplayServer, settings: AdapterSettings
) -> None:
    replay.add_fault("/works/", status=429, times=2, retry_after="7")
    with pytest.raises(UpstreamRateLimitedError) as info:
        _get(settings)
    assert info.value.retryable and info.value.retry_after == 7.0
    assert [r.status for r in replay.requests] == [429]  # one request, no retry inside it
    # the runtime's one retry policy waits at least what the server asked for
    failure = StageFailure.from_error(info.value)
    assert RetryPolicy(base_delay_s=0.1, max_delay_s=60).delay_s(1, failure.as_error()) >= 7.0


def test_client_reads_an_http_date_retry_after_of_503(
    replay: ReplayServer, settings: AdapterSettings
) -> None:
    replay.add_fault("/works/", status=503, times=1, retry_after="Thu, 01 Jan 1970 00:00:00 GMT")
    with pytest.raises(UpstreamUnavailableError) as info:
        _get(settings)
    assert info.value.retry_after == 0.0 and info.value.status == 503
    assert replay.count("/works/") == 1
    assert _get(settings) is not None  # the next try (the runtime's) succeeds


def test_client_reports_a_503_without_retry_after_as_retryable_once(
    replay: ReplayServer, settings: AdapterSettings
) -> None:
    replay.add_fault("/works/", status=503, times=10)
    with pytest.raises(UpstreamUnavailableError) as info:
        _get(settings)
    assert info.value.retryable and info.value.status == 503 and info.value.retry_after is None
    assert replay.count("/works/") == 1


def test_client_does_not_retry_404(replay: ReplayServer, settings: AdapterSettings) -> None:
    with pytest.raises(WorkNotFoundError) as info:
        _get(settings, doi="10.9999/does-not-exist")
    assert not info.value.retryable
    assert replay.count("/works/") == 1


def test_client_maps_connection_refused_to_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamUnavailableError) as info:
        _get(adapter_settings_for(f"http://127.0.0.1:{port}"))
    assert info.value.retryable


def test_client_without_a_token_makes_no_request_and_says_when_to_come_back(
    replay: ReplayServer, settings: AdapterSettings
) -> None:
    limiter = LocalRateLimiter({"openalex": RateSpec(rate=0.5)})
    assert _get(settings, limiter=limiter) is not None
    with pytest.raises(RateLimitWaitError) as info:
        _get(settings, limiter=limiter)
    assert info.value.retryable and 0 < (info.value.retry_after or 0) <= 2.0
    assert replay.count("/works/") == 1


def test_client_spends_the_token_the_dispatcher_reserved(
    replay: ReplayServer, settings: AdapterSettings
) -> None:
    limiter = LocalRateLimiter({"openalex": RateSpec(rate=0.01)})
    assert asyncio.run(limiter.take_many({"openalex": 1})) == {"openalex": Grant(1, 0.0)}
    with reserved_tokens(["openalex"]):  # the Dispatcher took the bucket's only token
        assert _get(settings, limiter=limiter) is not None
    assert replay.count("/works/") == 1
