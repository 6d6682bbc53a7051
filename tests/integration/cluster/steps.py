"""The steps of the two multi-node runs and what is recorded of them (see ``conftest.py``)."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from ingest_ray.kafka.producer import Producer
from ingest_ray.ledger.base import Job, JobFilter
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.simulate.cluster import LocalCluster
from ingest_ray.states import JobStatus
from tests.integration.cluster.scenario import (
    TENANT,
    ActorRow,
    Plan,
    Worker,
    actors,
    running_calls,
    scripted,
    wait_for,
)

#: (series, label) pairs the runtime's custom metrics must show on Ray's export endpoints
EXPORTED: tuple[tuple[str, str], ...] = (
    ("ray_ingest_jobs_admitted_total", 'pipeline="two_phase"'),
    ("ray_ingest_jobs_completed_total", 'pipeline="auto"'),
    ("ray_ingest_jobs_failed_total", 'pipeline="two_phase"'),
    ("ray_ingest_stage_duration_seconds_bucket", 'stage="mineru"'),
    ("ray_ingest_pool_size", 'pool="mineru"'),
    ("ray_ingest_pool_backlog", 'pool="embed"'),
    ("ray_ingest_in_flight", 'pool="index"'),
    ("ray_ingest_queue_depth", 'priority="5"'),
)
#: a worker's metrics reach its node's agent every ``metrics_report_interval_ms`` (Ray's
#: default is 10 s): three intervals for what the last jobs recorded to arrive
EXPORT_WAIT_S = 35.0


def is_exported(text: str, series: str, label: str) -> bool:
    """Whether the Prometheus ``text`` has a sample of ``series`` carrying ``label``."""
    pattern = rf"^{re.escape(series)}\{{[^}}]*{re.escape(label)}[^}}]*\}} [0-9.e+-]+$"
    return re.search(pattern, text, re.MULTILINE) is not None


@dataclass
class Run:
    """What a run did and what the cluster, the ledger and the index said about it."""

    cluster: LocalCluster
    runtime: str
    env: dict[str, str]
    chunks_table: str
    #: doc_key -> the request's source value
    submitted: dict[str, str] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    before_kill: list[ActorRow] = field(default_factory=list)
    after: list[ActorRow] = field(default_factory=list)
    victim: str = ""
    metrics: dict[str, str] = field(default_factory=dict)
    worker_exit: int | None = None
    worker_log: str = ""
    #: seconds after the first request: killed, every job terminal
    times: dict[str, float] = field(default_factory=dict)


def drop_tables(dsn: str, *names: str) -> None:
    """Drop the run's index tables."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))


def _all_jobs(ledger: RedisLedger) -> list[Job]:
    jobs: list[Job] = []
    cursor: str | None = None
    while True:
        page = ledger.list_jobs(JobFilter(tenant_id=TENANT), cursor=cursor, limit=1000)
        jobs += page.items
        cursor = page.next_cursor
        if cursor is None:
            return jobs


def _terminal(ledger: RedisLedger, expected: int) -> bool:
    jobs = _all_jobs(ledger)
    return len(jobs) >= expected and all(j.status.is_terminal for j in jobs)


def _at_stage(ledger: RedisLedger, stage: str) -> bool:
    return any(
        j.status is JobStatus.PROCESSING and j.stage == stage and j.attempts >= 1
        for j in _all_jobs(ledger)
    )


def _send(run: Run, requests: list[Any]) -> None:
    run.submitted = {r.doc_key: r.source.value for r in requests}
    with Producer(run.env["KAFKA_BOOTSTRAP_SERVERS"]) as producer:
        for r in requests:
            producer.send(run.env["INGEST_RAY_TOPIC_REQUESTS"], r, key=r.doc_key)
    run.times["submitted_at"] = time.time()


def _alive(run: Run, match: Any) -> ActorRow | None:
    return next((a for a in actors(run.cluster, run.runtime) if a.state == "ALIVE" and match(a)),
                None)  # fmt: skip


def _running_on(run: Run, rows: list[ActorRow], match: Any) -> ActorRow | None:
    """The first live actor of ``rows`` that ``match`` picks with a stage call running on it
    (as the state API shows it)."""
    return next((a for a in rows if a.state == "ALIVE" and match(a)
                 and running_calls(run.cluster, a.actor_id) > 0), None)  # fmt: skip


def _is_mineru(actor: ActorRow) -> bool:
    return actor.pool == "mineru"


def _kill_node_of(run: Run, worker: Worker, what: str, victim: Any, busy: Any) -> None:
    """Once a stage call runs on an actor ``busy`` picks, kill the raylet of the node that
    hosts the live actor ``victim`` picks: the busy actor itself when ``victim`` picks it too
    (a pool has actors on several nodes; the one whose call is running is the one to lose)."""
    wait_for(what, lambda: _alive(run, victim) is not None, 180, worker=worker)
    chosen: list[ActorRow] = []

    def found() -> bool:
        rows = actors(run.cluster, run.runtime)  # one snapshot (the state API may answer partly)
        running = _running_on(run, rows, busy)
        if running is None:
            return False
        alive = (a for a in rows if a.state == "ALIVE" and victim(a))
        target = running if victim(running) else next(alive, None)
        if target is None:
            return False
        run.before_kill = rows
        chosen.append(target)
        return True

    wait_for(f"a call running ({what})", found, 300, poll_s=0.2, worker=worker)
    run.victim = chosen[-1].node
    run.cluster.kill_raylet(run.victim)
    run.times["killed_s"] = round(time.time() - run.times["submitted_at"], 1)


def _settle(run: Run, ledger: RedisLedger, worker: Worker, expected: int) -> None:
    wait_for("every job terminal", lambda: _terminal(ledger, expected), 600, worker=worker)
    run.times["terminal_s"] = round(time.time() - run.times["submitted_at"], 1)
    run.jobs = [ledger.get(j.job_id) for j in _all_jobs(ledger)]
    time.sleep(3.0)  # let the Dispatcher hand its gauges and counters to Ray (about 1/s)
    run.after = actors(run.cluster, run.runtime)


def execute(run: Run, ledger: RedisLedger, plan: Plan, worker: Worker, fixtures: Path) -> None:
    """Run 1: submit, kill the MinerU actor's node mid-call, wait, record."""
    requests = plan.requests(fixtures)
    _send(run, requests)
    wait_for("a scripted MinerU call", lambda: _at_stage(ledger, "mineru_scripted"), 300,
             worker=worker)  # fmt: skip
    _kill_node_of(run, worker, "a MinerU actor", _is_mineru, _is_mineru)
    _settle(run, ledger, worker, len(requests))
    _scrape(run)


def _scrape(run: Run) -> None:
    """Read every surviving node's export endpoint until each of ``EXPORTED`` shows, or
    ``EXPORT_WAIT_S`` passes (the test then names what is missing)."""
    deadline = time.monotonic() + EXPORT_WAIT_S
    while True:
        run.metrics = {
            name: httpx.get(url, timeout=10).text
            for name, url in run.cluster.metrics_urls().items()
            if name not in run.cluster.killed
        }
        text = "\n".join(run.metrics.values())
        if all(is_exported(text, *pair) for pair in EXPORTED) or time.monotonic() > deadline:
            return
        time.sleep(2.0)


def execute_control_loss(run: Run, ledger: RedisLedger, count: int, worker: Worker) -> None:
    """Run 2: scripted ``auto`` jobs; kill the node that hosts the Dispatcher mid-run."""
    requests = [
        scripted(f"cl-{i}", "auto_scripted", chunk_scripted=1.0, embed_scripted=0.5)
        for i in range(count)
    ]
    _send(run, requests)
    wait_for("a chunk call", lambda: _at_stage(ledger, "chunk_scripted"), 300, worker=worker)
    # every stage actor is owned by the Dispatcher: a call running anywhere is lost with it
    _kill_node_of(run, worker, "the Dispatcher", lambda a: a.name.endswith("/dispatcher"),
                  lambda a: a.pool in {"chunk", "embed"})  # fmt: skip
    _settle(run, ledger, worker, len(requests))


def summary(run: Run) -> dict[str, Any]:
    """The figures of a run, for ``MULTINODE_REPORT``."""
    lost = [j for j in run.jobs if any(e.data.get("lost") for e in j.history)]
    placed = Counter(f"{a.pool or a.name.split('/', 1)[1].split('/')[0]}@{a.node}"
                     for a in {a.name: a for a in [*run.before_kill, *run.after]}.values())  # fmt: skip
    return {
        "jobs": len(run.jobs), "by_status": dict(Counter(j.status.value for j in run.jobs)),
        "by_pipeline": dict(Counter(j.pipeline for j in run.jobs)),
        "jobs_with_a_lost_try": len(lost), "victim": run.victim, **run.times,
        "jobs_taken_over_by_recovery": sum(
            1 for j in run.jobs if any("resumed_attempt" in e.data for e in j.history)),
        "lost_tries_by_stage": dict(Counter(
            e.stage for j in lost for e in j.history if e.data.get("lost"))),
        "actors_by_pool_and_node": dict(sorted(placed.items())),
        "worker_exit": run.worker_exit,
    }  # fmt: skip
