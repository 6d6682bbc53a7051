"""The IngestWorker as a process: SIGTERM mid-run, restart, nothing lost, nothing duplicated;
its health in `ingest-ray status`, its `/metrics`, and `ingest-ray worker stop`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from ingest_ray.config import Settings
from ingest_ray.events import IngestResult, decode
from ingest_ray.kafka.reader import read_topic
from ingest_ray.states import JobStatus
from ingest_ray.workers.base import read_health
from tests.integration.runtime.conftest import Env, request


def _worker_env(env: Env, state: Path) -> dict[str, str]:
    s = env.settings
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers, "REDIS_URL": s.redis_url,
        "INGEST_RAY_REDIS_PREFIX": s.redis_prefix, "INGEST_RAY_CONSUMER_GROUP": s.consumer_group,
        "INGEST_RAY_TOPIC_REQUESTS": s.topic_requests, "INGEST_RAY_TOPIC_RESULTS": s.topic_results,
        "INGEST_RAY_TOPIC_MAPPING": s.topic_mapping, "INGEST_RAY_TOPIC_DEADLETTER": s.topic_deadletter,
        "INGEST_RAY_RUNTIME_NAME": env.options.name, "INGEST_RAY_STATE_DIR": str(state),
        "INGEST_RAY_PLUGINS": '["ingest_ray.testing:use_scripted_stages"]',
        "INGEST_RAY_METRICS_PORT": "0", "INGEST_RAY_WORKER_HEARTBEAT_S": "0.5",
        "COLUMNS": "200",
    }  # fmt: skip


def _start(env: Env, state: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest_ray", "worker", "start", "ingest", "--name", name,
         "--grace", "30"],
        env=_worker_env(env, state), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def test_worker_sigterm_then_restart_loses_and_duplicates_nothing(env: Env, tmp_path: Path) -> None:
    docs = [f"w{i}" for i in range(40)]
    name = f"w-{uuid.uuid4().hex[:6]}"
    first = _start(env, tmp_path, name)
    try:
        # staggered stage times spread the completions, so SIGTERM lands mid-run
        env.send(*[request(d, sleep_s={"chunk": 0.1 + 0.05 * i}) for i, d in enumerate(docs)])
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] >= 5, timeout=120)
    finally:
        out = _stop(first)
    assert "stopped" in out
    done_at_stop = env.ledger.counts()[JobStatus.COMPLETED]
    assert done_at_stop < len(docs), "the worker finished everything before SIGTERM; test is void"

    second = _start(env, tmp_path, name)
    try:
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == len(docs), timeout=180)
    finally:
        _stop(second)
    assert len(env.jobs()) == len(docs)
    runs = env.runs()
    assert len(runs) == len(docs) * 4
    assert set(runs.values()) == {1}, {k: v for k, v in runs.items() if v != 1}
    results = [
        decode(m.value())
        for m in read_topic(env.settings.kafka_bootstrap_servers, env.settings.topic_results)
    ]
    assert sorted(r.doc_key for r in results if isinstance(r, IngestResult)) == sorted(docs)


def test_worker_health_metrics_and_stop_command(env: Env, tmp_path: Path) -> None:
    name = f"w-{uuid.uuid4().hex[:6]}"
    proc = _start(env, tmp_path, name)
    cli_env = _worker_env(env, tmp_path)
    try:
        env.send(request("m1"))
        env.wait_for(lambda: env.ledger.counts()[JobStatus.COMPLETED] == 1, timeout=120)
        settings = Settings(
            redis_url=env.settings.redis_url, redis_prefix=env.settings.redis_prefix
        )
        env.wait_for(
            lambda: any(h.name == name and h.alive for h in read_health(settings)), timeout=30
        )
        health = next(h for h in read_health(settings) if h.name == name)
        port = health.details["metrics_port"]
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        )
        assert 'ingest_jobs_completed_total{pipeline="auto"} 1.0' in body, [
            h.last_error for h in read_health(settings)
        ]
        assert "ingest_stage_duration_seconds_bucket" in body
        assert 'ingest_jobs_admitted_total{pipeline="auto"} 1.0' in body
        status = subprocess.run([sys.executable, "-m", "ingest_ray", "status"], env=cli_env,
                                capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        assert name in status.stdout
        assert "completed=1" in status.stdout
        stop = subprocess.run([sys.executable, "-m", "ingest_ray", "worker", "stop", name], env=cli_env,
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        assert f"{name}: stopped" in stop.stdout
        proc.wait(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    final = next(h for h in read_health(settings) if h.name == name)
    assert final.alive is False
    assert json.dumps(final.details)
    time.sleep(0)
