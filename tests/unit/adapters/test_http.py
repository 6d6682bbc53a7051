"""Retries, Retry-After and error mapping, through the real clients against the replay server."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import httpx
import pytest

from ingest_ray.adapters.errors import (
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
    WorkNotFoundError,
)
from ingest_ray.adapters.http import parse_retry_after, raise_for_status
from ingest_ray.adapters.openalex import OpenAlexClient
from ingest_ray.adapters.replay import ReplayServer, adapter_settings_for
from ingest_ray.adapters.settings import AdapterSettings
from tests.unit.adapters.conftest import RecordingSleep

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


def _get(settings: AdapterSettings, sleeps: RecordingSleep, doi: str = PLOS) -> str | None:
    async def main() -> str | None:
        client = OpenAlexClient(settings, sleep=sleeps)
        try:
            return (await client.get_work_by_doi(doi)).title
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_client_waits_retry_after_of_429_then_succeeds(
    replay: ReplayServer, settings: AdapterSettings, sleeps: RecordingSleep
) -> None:
    replay.add_fault("/works/", status=429, times=2, retry_after="1")
    title = _get(settings, sleeps)
    assert title is not None and title.startswith("Triose Phosphate Isomerase")
    assert sleeps.delays == [1.0, 1.0]
    assert [r.status for r in replay.requests] == [429, 429, 200]


def test_client_honours_http_date_retry_after_of_503(
    replay: ReplayServer, settings: AdapterSettings, sleeps: RecordingSleep
) -> None:
    replay.add_fault("/works/", status=503, times=1, retry_after="Thu, 01 Jan 1970 00:00:00 GMT")
    assert _get(settings, sleeps) is not None
    assert sleeps.delays == [0.0]
    assert replay.count("/works/") == 2


def test_client_backs_off_exponentially_on_503_without_retry_after(
    replay: ReplayServer, sleeps: RecordingSleep
) -> None:
    settings = adapter_settings_for(
        replay.base_url, backoff_initial_s=0.5, backoff_max_s=60.0, max_retries=3
    )
    replay.add_fault("/works/", status=503, times=3)
    assert _get(settings, sleeps) is not None
    assert len(sleeps.delays) == 3
    for n, delay in enumerate(sleeps.delays):
        assert 0.5 * 2**n <= delay <= 0.5 * 2**n + 0.5
    assert replay.count("/works/") == 4


def test_client_gives_up_after_max_retries_with_retryable_error(
    replay: ReplayServer, settings: AdapterSettings, sleeps: RecordingSleep
) -> None:
    replay.add_fault("/works/", status=503, times=10)
    with pytest.raises(UpstreamUnavailableError) as info:
        _get(settings, sleeps)
    assert info.value.retryable and info.value.status == 503
    assert replay.count("/works/") == settings.max_retries + 1


def test_client_does_not_sleep_a_long_retry_after_inline(
    replay: ReplayServer, settings: AdapterSettings, sleeps: RecordingSleep
) -> None:
    replay.add_fault("/works/", status=429, times=1, retry_after="3600")
    with pytest.raises(UpstreamRateLimitedError) as info:
        _get(settings, sleeps)
    assert info.value.retry_after == 3600.0
    assert sleeps.delays == []
    assert replay.count("/works/") == 1


def test_client_does_not_retry_404(
    replay: ReplayServer, settings: AdapterSettings, sleeps: RecordingSleep
) -> None:
    with pytest.raises(WorkNotFoundError) as info:
        _get(settings, sleeps, doi="10.9999/does-not-exist")
    assert not info.value.retryable
    assert replay.count("/works/") == 1
    assert sleeps.delays == []


def test_client_retries_with_real_sleep_on_retry_after(
    replay: ReplayServer, settings: AdapterSettings
) -> None:
    replay.add_fault("/works/", status=429, times=1, retry_after="1")

    async def main() -> str | None:
        client = OpenAlexClient(settings)
        try:
            return (await client.get_work_by_doi(PLOS)).title
        finally:
            await client.aclose()

    assert asyncio.run(main()) is not None
    assert [r.status for r in replay.requests] == [429, 200]


def test_client_maps_connection_refused_to_retryable(sleeps: RecordingSleep) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = adapter_settings_for(f"http://127.0.0.1:{port}", max_retries=1)
    with pytest.raises(UpstreamUnavailableError) as info:
        _get(settings, sleeps)
    assert info.value.retryable
    assert len(sleeps.delays) == 1
