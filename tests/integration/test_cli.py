"""The CLI as a user runs it, in a subprocess against the real services."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable

from ingest_ray.ledger import JobFilter
from ingest_ray.ledger.redis import RedisLedger
from tests.conftest import Services


def _cli(
    services: Services, prefix: str, *args: str, topics: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; ``topics`` (requests, results, mapping, dead letters) keep it off the
    default topics, which an earlier use of the stack may have filled."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap,
        "REDIS_URL": services.redis_url,
        "INGEST_RAY_REDIS_PREFIX": prefix,
        "INGEST_RAY_CONSUMER_GROUP": f"cli-{uuid.uuid4().hex}",
        "COLUMNS": "200",
    }
    names = ("REQUESTS", "RESULTS", "MAPPING", "DEADLETTER")
    env.update({f"INGEST_RAY_TOPIC_{n}": t for n, t in zip(names, topics or [], strict=False)})
    return subprocess.run(
        [sys.executable, "-m", "ingest_ray", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_cli_admit_admits_enqueued_requests_once(
    services: Services, redis_prefix: str, new_topics: Callable[..., list[str]]
) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:6]}"
    topics = new_topics("requests", "results", "mapping", "dlq")
    sent = _cli(services, redis_prefix, "enqueue", "10.1/a", "10.1/b", "10.1/a", "--tenant",
                tenant, topics=topics)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    result = _cli(services, redis_prefix, "admit", "--idle", "3", topics=topics)
    assert result.returncode == 0, result.stderr
    ledger = RedisLedger(services.redis_url, prefix=redis_prefix)
    jobs = ledger.list_jobs(JobFilter(tenant_id=tenant)).items
    ledger.close()
    assert sorted(j.doc_key for j in jobs) == ["doi:10.1/a", "doi:10.1/b"]


def test_cli_health_and_ledger_commands(services: Services, redis_prefix: str) -> None:
    health = _cli(services, redis_prefix, "health", "--json")
    assert health.returncode == 0, health.stdout + health.stderr
    assert '"brokers": 1' in health.stdout
    counts = _cli(services, redis_prefix, "ledger", "counts")
    assert counts.returncode == 0
    assert "queued: 0" in counts.stdout


def test_cli_reports_typed_errors_as_one_line(services: Services, redis_prefix: str) -> None:
    result = _cli(services, redis_prefix, "ledger", "show", "no-such-job")
    assert result.returncode == 2
    assert "JobNotFoundError" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_status_says_redis_is_unreachable_without_a_traceback(services: Services) -> None:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "COLUMNS": "200",
           "INGEST_RAY_LEDGER_BACKEND": "redis"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "ingest_ray", "status"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert "redis unreachable" in out
    assert "ledger unreachable" in out
