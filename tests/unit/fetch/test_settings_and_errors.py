"""FetchSettings defaults and environment; the error tree and its retryability."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest_ray.errors import PermanentError, RetryableError
from ingest_ray.fetch import (
    FetchError,
    FetchFailedError,
    FetchHttpError,
    FetchNotFoundError,
    FetchRefusedError,
    FetchSettings,
    NotAPdfError,
    PdfTooLargeError,
    TooManyRedirectsError,
)
from ingest_ray.fetch.fetcher import parse_retry_after


def test_fetch_settings_defaults_are_safe() -> None:
    settings = FetchSettings()
    assert settings.max_bytes == 50 * 1024 * 1024
    assert settings.total_timeout_s == 60.0
    assert settings.max_redirects == 5
    assert settings.allow_loopback is False
    assert settings.allowed_schemes == frozenset({"http", "https"})


def test_fetch_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_FETCH_MAX_BYTES", "1234")
    monkeypatch.setenv("INGEST_RAY_FETCH_ALLOWED_SCHEMES", '["https"]')
    settings = FetchSettings()
    assert settings.max_bytes == 1234
    assert settings.allowed_schemes == frozenset({"https"})


@pytest.mark.parametrize("schemes", [{"ftp"}, {"http", "file"}, set()])
def test_fetch_settings_refuse_schemes_beyond_http(schemes: set[str]) -> None:
    with pytest.raises(ValidationError):
        FetchSettings(allowed_schemes=frozenset(schemes))


def test_fetch_settings_are_frozen() -> None:
    settings = FetchSettings()
    with pytest.raises(ValidationError):
        settings.allow_loopback = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (FetchRefusedError, False),
        (TooManyRedirectsError, False),
        (NotAPdfError, False),
        (PdfTooLargeError, False),
        (FetchNotFoundError, False),
        (FetchHttpError, False),
        (FetchFailedError, True),
    ],
)
def test_fetch_errors_say_whether_to_retry(error: type[FetchError], retryable: bool) -> None:
    exc = error("x", url="https://a.test/x.pdf")
    assert exc.retryable is retryable
    assert isinstance(exc, RetryableError if retryable else PermanentError)
    assert isinstance(exc, FetchError)


def test_fetch_error_survives_pickling_with_its_context() -> None:
    exc = FetchFailedError("busy", url="https://a.test/x.pdf", status=503, retry_after=30.0)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is FetchFailedError
    assert (back.message, back.url, back.status, back.retry_after) == (
        "busy",
        "https://a.test/x.pdf",
        503,
        30.0,
    )


def test_parse_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_offline_fetcher_resolves_no_names_and_reports_unknown_host(tmp_path: Path) -> None:
    import asyncio

    from ingest_ray.fetch import FetchNotFoundError, FetchSettings, SafeFetcher
    from ingest_ray.storage.blobs import FileBlobStore

    fetcher = SafeFetcher(FetchSettings(offline=True), FileBlobStore(tmp_path))
    with pytest.raises(FetchNotFoundError, match="offline"):
        asyncio.run(fetcher.fetch_pdf("https://journals.example.org/article.pdf"))
