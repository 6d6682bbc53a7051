"""The HTTP job API client: SSE parsing, error mapping, and following a job across drops."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ingest_ray.commands.api_client import (
    ApiError,
    ApiUnavailableError,
    JobApi,
    SseDecoder,
    SseMessage,
    follow_job,
)
from ingest_ray.ledger.base import JobEvent
from ingest_ray.states import JobStatus


def event(seq: int, to: str, *, kind: str = "transition", **fields: Any) -> dict[str, Any]:
    return {"seq": seq, "job_id": "J1", "kind": kind, "at": datetime.now(UTC).isoformat(),
            "to_status": to, **fields}  # fmt: skip


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        f"id: {e['seq']}\nevent: {e['kind']}\ndata: {json.dumps(e)}\n\n".encode() for e in events
    )


def client(handler: Callable[[httpx.Request], httpx.Response]) -> JobApi:
    return JobApi("http://api.test", "irk_secret", transport=httpx.MockTransport(handler))


def decode(text: str) -> list[SseMessage]:
    decoder = SseDecoder()
    return [m for line in text.split("\n") if (m := decoder.feed(line)) is not None]


def test_sse_decoder_parses_events_and_ignores_heartbeats() -> None:
    messages = decode(': ping\n\nid: 7\nevent: stage\ndata: {"a": 1}\n\n: ping\n\n')
    assert messages == [SseMessage(event="stage", data='{"a": 1}', id="7")]


def test_sse_decoder_joins_data_lines_and_keeps_last_id() -> None:
    messages = decode("id: 1\ndata: one\ndata:two\n\ndata: three\n\n")
    assert messages == [SseMessage("message", "one\ntwo", "1"), SseMessage("message", "three", "1")]


def test_job_api_sends_bearer_key_and_maps_error_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": {"code": "job_not_found", "message": "no job"}})

    with client(handler) as api, pytest.raises(ApiError) as info:
        api.get_job("J9")
    assert (info.value.status, info.value.code) == (404, "job_not_found")
    assert seen[0].headers["Authorization"] == "Bearer irk_secret"
    assert seen[0].url.path == "/jobs/J9"


def test_job_api_treats_429_as_retryable_with_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "rate_limited", "message": "slow down"}}
        return httpx.Response(429, json=body, headers={"Retry-After": "3"})

    with client(handler) as api, pytest.raises(ApiUnavailableError) as info:
        api.stats()
    assert info.value.retry_after == 3.0


def test_job_api_submit_posts_items_and_returns_jobs() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json={"jobs": [
            {"job_id": "J1", "doc_key": "doi:10.1/x", "status": "queued", "created": True}]})  # fmt: skip

    with client(handler) as api:
        jobs = api.submit([{"source": {"kind": "doi", "value": "10.1/x"}}])
    assert jobs[0]["job_id"] == "J1"
    assert bodies == [{"items": [{"source": {"kind": "doi", "value": "10.1/x"}}]}]


def dropping_stream(parts: list[bytes], drop: bool) -> Iterator[bytes]:
    yield from parts
    if drop:
        raise httpx.ReadError("connection reset")


def test_follow_job_resumes_after_a_drop_with_last_event_id() -> None:
    resumed_from: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resumed_from.append(request.headers.get("Last-Event-ID"))
        if len(resumed_from) == 1:
            body = dropping_stream([sse(event(1, "queued", kind="created"),
                                        event(2, "processing", stage="metadata"))], drop=True)  # fmt: skip
        else:  # the server repeats seq 2; the follower must not
            body = dropping_stream([sse(event(2, "processing", stage="metadata"),
                                        event(3, "completed"))], drop=False)  # fmt: skip
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    seen: list[JobEvent] = []
    with client(handler) as api:
        outcome = follow_job(api, "J1", seen.append, sleep=lambda _: None)
    assert outcome is JobStatus.COMPLETED
    assert [e.seq for e in seen] == [1, 2, 3]
    assert resumed_from == [None, "2"]


def test_follow_job_gives_up_after_consecutive_failures() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    pauses: list[float] = []
    with client(handler) as api, pytest.raises(ApiUnavailableError):
        follow_job(api, "J1", lambda e: None, reconnects=3, sleep=pauses.append)
    assert len(calls) == 4
    assert pauses == [0.5, 1.0, 2.0]


def test_follow_job_does_not_retry_a_refused_stream() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "unauthenticated", "message": "no"}})

    with client(handler) as api, pytest.raises(ApiError) as info:
        follow_job(api, "J1", lambda e: None, sleep=lambda _: None)
    assert info.value.status == 401
