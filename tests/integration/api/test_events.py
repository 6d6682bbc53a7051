"""SSE on Ray Serve: order, live delivery, resume with Last-Event-ID, heartbeats, the end of the
stream, and nothing left open after 200 clients went away."""

from __future__ import annotations

import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ingest_ray.ledger.base import TransitionRequest
from ingest_ray.states import JobStatus
from tests.integration.api.conftest import ApiEnv
from tests.integration.api.sse import events, frames

P, Q = JobStatus.PROCESSING, JobStatus.QUEUED


def _job(env: ApiEnv, text: str) -> str:
    with env.client() as c:
        r = c.post("/jobs", json={"source": {"kind": "text", "value": text}, "pipeline": "auto"})
    return str(r.json()["jobs"][0]["job_id"])


def _run_job(env: ApiEnv, job_id: str, *, pause: float = 0.05) -> None:
    steps = [TransitionRequest(job_id, Q, P, stage="metadata", attempts=1)]
    steps += [TransitionRequest(job_id, P, P, stage=s, attempts=1) for s in ("chunk", "embed")]
    steps += [TransitionRequest(job_id, P, JobStatus.COMPLETED)]
    for step in steps:
        time.sleep(pause)
        env.ledger.transition(step)


def _seqs(frames_: list) -> list[int]:
    return [int(f.id) for f in frames_]


def test_events_arrive_live_in_order_and_stream_ends_at_terminal(api_env: ApiEnv) -> None:
    job_id = _job(api_env, "sse live order")
    with api_env.client() as c, c.stream("GET", f"/jobs/{job_id}/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        mover = threading.Thread(target=_run_job, args=(api_env, job_id), kwargs={"pause": 0.3})
        mover.start()
        got = events(r)  # returns only when the server ends the stream
        mover.join()
    assert _seqs(got) == [1, 2, 3, 4, 5]
    assert [f.event for f in got] == ["created", "transition", "stage", "stage", "transition"]
    body = [f.json() for f in got]
    assert [e["seq"] for e in body] == [1, 2, 3, 4, 5]
    assert body[-1]["to_status"] == "completed" and body[2]["stage"] == "chunk"


def test_events_resume_after_last_event_id_without_loss_or_repeat(api_env: ApiEnv) -> None:
    job_id = _job(api_env, "sse resume")
    with api_env.client() as c:
        with c.stream("GET", f"/jobs/{job_id}/events") as r:
            first = next(f for f in frames(r) if f.data)  # then the client goes away
        assert first.id == "1"
        _run_job(api_env, job_id, pause=0)
        resumed = {}
        for k in range(6):
            with c.stream("GET", f"/jobs/{job_id}/events",
                          headers={"Last-Event-ID": str(k)}) as r:  # fmt: skip
                resumed[k] = _seqs(events(r))
        with c.stream("GET", f"/jobs/{job_id}/events", params={"last_event_id": 3}) as r:
            by_query = _seqs(events(r))
        bad = c.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "x1"})
    assert resumed == {k: list(range(k + 1, 6)) for k in range(6)}
    assert by_query == [4, 5]
    assert bad.status_code == 422


def test_events_heartbeat_while_idle_then_end_on_cancel(api_env: ApiEnv) -> None:
    job_id = _job(api_env, "sse heartbeat")
    seen = []
    with api_env.client() as c, c.stream("GET", f"/jobs/{job_id}/events") as r:
        cancel = threading.Timer(1.6, lambda: httpx.post(
            f"{api_env.url}/jobs/{job_id}/cancel",
            headers={"X-API-Key": api_env.keys["a"]}))  # fmt: skip
        cancel.start()
        seen = list(frames(r))
        cancel.join()
    heartbeats = [f for f in seen if f.comments and not f.data]
    data = [f for f in seen if f.data]
    assert len(heartbeats) >= 2  # 0.5 s apart in this deployment
    assert _seqs(data) == [1, 2] and data[-1].json()["to_status"] == "cancelled"


def _gauges(env: ApiEnv) -> dict[str, float]:
    text = httpx.get(f"{env.url}/metrics").text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(ingest_ray_api_\w+) (\S+)$", text, re.M)}


def _replica_connections(env: ApiEnv) -> int:
    return sum(1 for c in env.redis.client_list() if c.get("name") == "ingest-ray-api")


def _drop_before_first_byte(env: ApiEnv, job_id: str) -> None:
    host, port = env.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: {host}\r\n"
            f"X-API-Key: {env.keys['a']}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )


def _drop_after_first_event(env: ApiEnv, job_id: str) -> None:
    with env.client() as c, c.stream("GET", f"/jobs/{job_id}/events") as r:
        next(f for f in frames(r) if f.data)


def _settled(env: ApiEnv, baseline: dict[str, float], timeout: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        now = _gauges(env)
        keys = ("ingest_ray_api_sse_streams", "ingest_ray_api_redis_connections_in_use",
                "ingest_ray_api_asyncio_tasks")  # fmt: skip
        if all(now[k] <= baseline[k] for k in keys) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def test_events_200_disconnects_leave_nothing_open(api_env: ApiEnv) -> None:
    job_id = _job(api_env, "sse disconnects")  # stays queued: a leaked stream would live on
    _drop_after_first_event(api_env, job_id)  # warm the pool
    baseline = _settled(api_env, {k: float("inf") for k in _gauges(api_env)})
    connections_before = _replica_connections(api_env)
    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = [pool.submit(_drop_before_first_byte if i % 2 else _drop_after_first_event,
                            api_env, job_id) for i in range(200)]  # fmt: skip
        for j in jobs:
            j.result()
    after = _settled(api_env, baseline)
    assert baseline["ingest_ray_api_sse_streams"] == 0
    assert after["ingest_ray_api_sse_streams"] == 0
    assert after["ingest_ray_api_redis_connections_in_use"] <= baseline[
        "ingest_ray_api_redis_connections_in_use"]  # fmt: skip
    assert after["ingest_ray_api_asyncio_tasks"] <= baseline["ingest_ray_api_asyncio_tasks"]
    # idle pooled connections may stay (bounded by the pool), none is held by a dead stream
    connections_after = _replica_connections(api_env)
    assert connections_after <= max(connections_before, api_env.api.redis_max_connections)
    print("baseline", baseline, "after", after, "conns", connections_before, connections_after)
