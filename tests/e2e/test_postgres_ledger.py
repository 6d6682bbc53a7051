"""End to end on the PostgreSQL ledger (``INGEST_RAY_LEDGER_BACKEND=postgres``): both real
pipelines, then the API on Ray Serve over a runtime with scripted stages: SSE to the end and
resumed with ``Last-Event-ID``, cancel, a failure with its dead letter, and retry. Runs once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from ingest_ray.auth import ApiKeyStore
from ingest_ray.config import Settings
from ingest_ray.events import DeadLetter, DocumentSource, SourceKind, decode
from ingest_ray.kafka import KafkaClient
from ingest_ray.kafka.reader import read_topic
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.local_run import run_local
from ingest_ray.pipelines.builtin import STAGE_FACTORIES, builtin_catalog
from ingest_ray.ports import free_port
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from ingest_ray.states import JobStatus
from tests.conftest import FIXTURES, Services
from tests.integration.api.conftest import (
    ApiEnv,
    api_settings,
    cleanup,
    issue_keys,
    make_settings,
)
from tests.integration.api.sse import events

SCRIPTED = {name: "ingest_ray.testing:ScriptedStage" for name in STAGE_FACTORIES}
PDF = FIXTURES / "pdfs" / "sample-libreoffice-writer-1page.pdf"


@pytest.fixture(scope="module")
def pg_schema_env(pg_ledger_dsn: str) -> Iterator[str]:
    """The environment selects the PostgreSQL ledger, in a schema of this module's own."""
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGEST_RAY_LEDGER_BACKEND", "postgres")
        mp.setenv("INGEST_RAY_POSTGRES_DSN", pg_ledger_dsn)
        mp.setenv("INGEST_RAY_POSTGRES_LEDGER_SCHEMA", schema)
        yield schema
    with psycopg.connect(pg_ledger_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _history_rows(dsn: str, schema: str, job_id: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        query = sql.SQL("SELECT seq, to_status FROM {}.job_events WHERE job_id = %s ORDER BY seq")
        return conn.execute(query.format(sql.Identifier(schema)), (job_id,)).fetchall()


def test_pg_ledger_runs_both_pipelines(
    pg_schema_env: str, pg_ledger_dsn: str, services: Services, local_ray: None, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=f"test:{tag}:", consumer_group=f"pg-{tag}", runtime_name=f"pg-{tag}",
        topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
        topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
        topic_partitions=1, metrics_port=-1,
        sections={"storage": {"blob_url": str(tmp_path / "blobs")},
                  "index": {"lancedb_dir": str(tmp_path / "index")}},
    )  # fmt: skip
    assert settings.ledger_backend == "postgres"
    sources = [
        DocumentSource(kind=SourceKind.PDF_PATH, value=str(PDF)),
        DocumentSource(kind=SourceKind.TEXT, value="Reciprocal rank fusion merges rankings."),
    ]
    report = run_local(settings, sources, tenant="pg", timeout=600)
    jobs = {t.job.pipeline: t.job for t in report.tracked if t.job is not None}
    assert set(jobs) == {"two_phase", "auto"}
    for job in jobs.values():
        assert job.status is JobStatus.COMPLETED, (job.pipeline, job.error)
        assert job.outputs["index"]["indexed"] >= 1
        rows = _history_rows(pg_ledger_dsn, pg_schema_env, job.job_id)  # the history, in SQL
        assert [seq for seq, _ in rows] == [e.seq for e in job.history]
        assert rows[-1][1] == "completed"
    cleanup(redis.Redis.from_url(services.redis_url), settings.redis_prefix)


@dataclass
class PgApi:
    env: ApiEnv
    runtime: Runtime


@pytest.fixture(scope="module")
def pg_api(
    pg_schema_env: str,
    services: Services,
    local_ray: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PgApi]:
    from serve_app import server

    settings = make_settings(services, tmp_path_factory.mktemp("pg-api"))
    assert settings.ledger_backend == "postgres"
    KafkaClient.from_settings(settings).ensure_topics()
    api = api_settings()
    store = ApiKeyStore(settings.redis_url, settings.redis_prefix)
    keys = issue_keys(store)
    port = free_port()
    server.start(settings, api, host="127.0.0.1", port=port, replicas=1)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    ledger = open_ledger(settings)
    assert isinstance(ledger, PostgresLedger)
    env = ApiEnv(f"http://127.0.0.1:{port}", settings, api, ledger, client, keys, store)
    catalog = builtin_catalog(settings, factories=SCRIPTED)
    runtime = Runtime(
        settings, catalog, RuntimeOptions(name=settings.runtime_name, reconcile_s=1.0)
    )
    runtime.start()
    runtime.start_ingress(1, tag="pg")
    try:
        yield PgApi(env, runtime)
    finally:
        runtime.shutdown()
        server.stop()
        ledger.close()
        store.close()
        cleanup(client, settings.redis_prefix)
        client.close()


def _submit(env: ApiEnv, text: str, **script: object) -> str:
    item = {"source": {"kind": "text", "value": text}, "pipeline": "auto", "metadata": script}
    with env.client() as c:
        reply = c.post("/jobs", json=item)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["jobs"][0]["job_id"])


def _stream(env: ApiEnv, job_id: str, last_event_id: int | None = None) -> list[dict[str, object]]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with (
        env.client() as c,
        c.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=120) as r,
    ):
        return [f.json() for f in events(r)]


def test_pg_api_sse_follows_a_job_to_the_end_and_resumes(pg_api: PgApi) -> None:
    env = pg_api.env
    job_id = _submit(env, "pg sse", fail_times={"chunk": 1})
    got = _stream(env, job_id)
    seqs = [int(str(e["seq"])) for e in got]
    assert seqs == list(range(1, len(got) + 1))
    assert got[-1]["to_status"] == "completed"
    assert {"chunk", "embed", "index"} <= {e["stage"] for e in got if e["kind"] == "stage"}
    resumed = _stream(env, job_id, last_event_id=3)
    assert [e["seq"] for e in resumed] == seqs[3:]
    assert env.ledger.get(job_id).outputs["chunk"]["attempt"] == 2  # the flake was retried


def test_pg_api_cancel_stops_a_slow_job(pg_api: PgApi) -> None:
    env = pg_api.env
    job_id = _submit(env, "pg cancel", sleep_s={"metadata": 1.5})
    with env.client() as c, c.stream("GET", f"/jobs/{job_id}/events", timeout=120) as r:
        cancelled = c.post(f"/jobs/{job_id}/cancel").json()
        got = [f.json() for f in events(r)]
    assert cancelled["changed"] is True
    assert got[-1]["to_status"] == "cancelled"
    assert env.ledger.get(job_id).status is JobStatus.CANCELLED


def _dead_letter_of(env: ApiEnv, job_id: str, timeout: float = 30.0) -> DeadLetter | None:
    """The job's dead letter, once the outbox relay has published it (it follows the failed
    transition that wrote it, so it may arrive a moment after the job reads failed)."""
    deadline = time.monotonic() + timeout
    while True:
        topic = env.settings.topic_deadletter
        for msg in read_topic(env.settings.kafka_bootstrap_servers, topic):
            letter = decode(msg.value())
            if isinstance(letter, DeadLetter) and letter.job_id == job_id:
                return letter
        if time.monotonic() > deadline:
            return None
        time.sleep(0.5)


def test_pg_api_failure_is_dead_lettered_then_retried_to_completion(pg_api: PgApi) -> None:
    env = pg_api.env
    flag = f"{env.settings.redis_prefix}broken"
    env.redis.set(flag, "1")
    job_id = _submit(env, "pg retry", fail_while={"embed": flag})
    failed = _stream(env, job_id)
    assert failed[-1]["to_status"] == "failed"
    letter = _dead_letter_of(env, job_id)
    assert letter is not None and letter.stage == "embed"
    listed = subprocess.run(
        [sys.executable, "-m", "ingest_ray", "dlq", "list", "--kind", "job", "--json"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": env.settings.kafka_bootstrap_servers,
             "REDIS_URL": env.settings.redis_url, "COLUMNS": "250",
             "INGEST_RAY_TOPIC_DEADLETTER": env.settings.topic_deadletter},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert job_id in [x["subject"]["job_id"] for x in json.loads(listed.stdout)]
    env.redis.delete(flag)
    with env.client() as c:
        retried = c.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 200, retried.text
    after = _stream(env, job_id, last_event_id=int(str(failed[-1]["seq"])))
    assert after[0]["reason"] == "retry"
    assert after[-1]["to_status"] == "completed"
    history = env.ledger.get(job_id).history
    assert [e.reason for e in history].count("retry") == 1
