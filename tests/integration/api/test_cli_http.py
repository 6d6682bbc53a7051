"""The HTTP CLI against the live job API: a runtime with scripted stages on real Kafka, Redis and
Ray, the app served by uvicorn on a loopback ephemeral port, and a key from ``apikey create``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import typer
import uvicorn
from typer.testing import CliRunner, Result

from ingest_ray.commands.api import register
from ingest_ray.config import Settings
from ingest_ray.kafka import KafkaClient
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.pipelines.builtin import STAGE_FACTORIES, builtin_catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.states import JobStatus
from serve_app.app import build_app
from tests.conftest import Services

SCRIPTED = {name: "ingest_ray.testing:ScriptedStage" for name in STAGE_FACTORIES}


@dataclass(frozen=True)
class Live:
    """A running job API with a runtime behind it."""

    url: str
    settings: Settings
    ledger: RedisLedger

    def env(self) -> dict[str, str]:
        """What a CLI process needs to reach this stack's Redis keys."""
        return {**os.environ, "INGEST_RAY_REDIS_URL": self.settings.redis_url,
                "INGEST_RAY_REDIS_PREFIX": self.settings.redis_prefix, "COLUMNS": "200"}  # fmt: skip

    def wait_status(self, job_id: str, status: JobStatus, timeout: float = 60.0) -> None:
        """Block until the ledger shows ``status`` for ``job_id``."""
        deadline = time.monotonic() + timeout
        while (job := self.ledger.get(job_id)).status is not status:
            assert time.monotonic() < deadline, (
                f"{job_id} never became {status.value}: {job.status.value} at {job.stage} "
                f"(try {job.attempts}), last events {[(e.reason, e.stage) for e in job.history[-4:]]}"
            )
            time.sleep(0.2)


def live_settings(services: Services, prefix: str) -> Settings:
    """Settings isolated by Redis prefix, topics, consumer group and runtime name."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=prefix, consumer_group=f"ui-{tag}", runtime_name=f"ui-{tag}",
        topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
        topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
        topic_partitions=1, metrics_port=-1,
    )  # fmt: skip


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 and an ephemeral port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def live_stack(services: Services, prefix: str) -> Iterator[Live]:
    """A runtime running every stage as a ScriptedStage, and the API app in front of it."""
    settings = live_settings(services, prefix)
    KafkaClient.from_settings(settings).ensure_topics()
    options = RuntimeOptions(name=settings.runtime_name, reconcile_s=1.0)
    runtime = Runtime(settings, builtin_catalog(settings, factories=SCRIPTED), options)
    ledger = RedisLedger.from_settings(settings)
    runtime.start()
    runtime.start_ingress(1, tag="ui")
    try:
        with serving(build_app(settings)) as url:
            yield Live(url, settings, ledger)
    finally:
        runtime.shutdown()
        ledger.close()


def apikey(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    """``ingest-ray apikey ...`` in a subprocess with this stack's Redis prefix."""
    code = "from ingest_ray.commands.apikey import apikey_app; apikey_app()"
    return subprocess.run([sys.executable, "-c", code, *args], env=live.env(),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def live(services: Services, local_ray: None) -> Iterator[Live]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    with live_stack(services, prefix) as stack:
        yield stack
    import redis

    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def cli(live: Live, key: str, *args: str) -> Result:
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, [*args, "--url", live.url, "--key", key], env={"COLUMNS": "200"})


def submit(live: Live, key: str, text: str, **script: object) -> str:
    result = cli(live, key, "submit", text, "--kind", "text", "--metadata", json.dumps(script))
    assert result.exit_code == 0, result.output
    return result.output.split()[0]


def test_cli_http_apikey_submit_watch_jobs_cancel_retry_revoke(live: Live) -> None:
    created = apikey(live, "create", "--tenant", "cli-t", "--scopes", "jobs:read,jobs:write",
                     "--scopes", "jobs:cancel", "--name", "ci")  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("irk_")
    listed = apikey(live, "list", "--tenant", "cli-t", "--json")
    (row,) = json.loads(listed.stdout)
    assert row["scopes"] == ["jobs:cancel", "jobs:read", "jobs:write"] and not row["revoked"]

    done = submit(live, key, "cli done", sleep_s={"chunk": 0.3})
    watched = cli(live, key, "watch", done)
    assert watched.exit_code == 0, watched.output
    assert f"{done}: completed" in watched.output
    assert "index" in watched.output  # one line per stage, the last one included

    doomed = submit(live, key, "cli doomed", permanent=["embed"])
    assert cli(live, key, "watch", doomed).exit_code == 1
    retried = cli(live, key, "retry", doomed)
    assert retried.exit_code == 0 and f"{doomed}: queued" in retried.output

    slow = submit(live, key, "cli slow", sleep_s={"metadata": 20})
    live.wait_status(slow, JobStatus.PROCESSING)
    assert cli(live, key, "cancel", slow).exit_code == 0
    assert cli(live, key, "watch", slow).exit_code == 2
    assert live.ledger.get(slow).status is JobStatus.CANCELLED

    listing = cli(live, key, "jobs", "--status", "completed", "--json")
    assert [j["job_id"] for j in json.loads(listing.output)["items"]] == [done]
    shown = cli(live, key, "job", done, "--json")
    assert json.loads(shown.output)["history"][-1]["to_status"] == "completed"

    assert apikey(live, "revoke", row["key_id"]).returncode == 0
    refused = cli(live, key, "jobs")
    assert refused.exit_code == 3 and "401" in refused.output


def ingest_ray(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    """``ingest-ray ...`` in a subprocess with this stack's Redis prefix and runtime name."""
    env = {**live.env(), "INGEST_RAY_RUNTIME_NAME": live.settings.runtime_name,
           "KAFKA_BOOTSTRAP_SERVERS": live.settings.kafka_bootstrap_servers}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ingest_ray", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_cli_http_tenant_quota_keeps_a_job_queued_with_its_reason(live: Live) -> None:
    import httpx

    key = apikey(live, "create", "--tenant", "quota-t").stdout.strip()
    zero = ingest_ray(live, "tenant", "set", "quota-t", "--weight", "0")
    assert zero.returncode == 2 and "weight must be > 0" in zero.stderr, zero.stderr
    no_cap = ingest_ray(live, "tenant", "set", "quota-t", "--max-in-flight", "0")
    assert no_cap.returncode == 2 and "max-in-flight must be at least 1" in no_cap.stderr
    made = ingest_ray(live, "tenant", "set", "quota-t", "--jobs-per-hour", "1", "--weight", "2")
    assert made.returncode == 0 and "tenant quota-t created: weight 2, 1 jobs/h" in made.stdout
    time.sleep(2.5)  # the Dispatcher re-reads limits every 2 s

    first = submit(live, key, "quota first")
    live.wait_status(first, JobStatus.COMPLETED)
    second = submit(live, key, "quota second")
    deadline = time.monotonic() + 30
    while "waiting: over its quota" not in (shown := cli(live, key, "job", second)).output:
        assert time.monotonic() < deadline, shown.output
        time.sleep(0.3)
    assert "1 of 1 jobs/h started" in shown.output
    assert live.ledger.get(second).status is JobStatus.QUEUED  # held back, never dropped

    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as http:
        view = http.get("/tenants").json()
        detail = http.get(f"/jobs/{second}").json()
    assert view["tenant_id"] == "quota-t" and view["limits"]["jobs_per_hour"] == 1
    assert view["stats"]["blocked"].startswith("over its quota")
    assert detail["admission"]["waiting"] and "over its quota" in detail["admission"]["reason"]
    status = ingest_ray(live, "status", "--tenants")
    assert status.returncode == 0, status.stderr
    assert "quota-t" in status.stdout and "over its quota" in status.stdout

    assert ingest_ray(live, "tenant", "reset", "quota-t", "--jobs-per-hour").returncode == 0
    live.wait_status(second, JobStatus.COMPLETED)  # at run time, without a restart
