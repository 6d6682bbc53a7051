"""A chaos run: real Kafka, Redis and Ray, real built-in stages, several ingest workers, and
random faults for a fixed time while jobs flow; then the checks of ``checks.py``.

The run starts a Kafka broker and a Redis of its own (free loopback ports, its own state dir) so
it can ``kill -9`` them without touching anything else, and worker processes that join the Ray
of the calling process (``RAY_ADDRESS``). Text documents go through ``auto``, PDFs through
``two_phase``, indexed in LanceDB; every built-in stage fails transiently at ``flaky_rate``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray

from benchmarks.chaos.checks import Findings, check
from benchmarks.chaos.corpus import TENANT, Outgoing, corpus
from benchmarks.chaos.faults import FAULTS, FaultRecord, Injector, Workers
from ingest_ray.config import Settings
from ingest_ray.index.pgstack import TempPostgres
from ingest_ray.kafka import KafkaClient, Producer
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.ports import free_ports
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.stack.launcher import LocalStack
from ingest_ray.states import JobStatus

Log = Callable[[str], None]


@dataclass
class ChaosConfig:
    """One run's size and faults."""

    jobs: int = 300
    pdf_share: float = 0.05
    malformed: int = 24
    duration_s: float = 75.0
    fault_every_s: float = 6.0
    workers: int = 2
    flaky_rate: float = 0.05
    seed: int = 7
    faults: tuple[str, ...] = FAULTS
    settle_timeout_s: float = 900.0
    outage_s: float = 10.0
    #: the ledger backend; ``postgres`` runs a temporary durable PostgreSQL and adds its
    #: ``kill -9`` (``postgres_kill9``) to the faults
    ledger: str = "redis"

    def fault_kinds(self) -> tuple[str, ...]:
        """The faults of this run (the PostgreSQL twin only with that ledger)."""
        if self.ledger == "postgres" and "postgres_kill9" not in self.faults:
            return (*self.faults, "postgres_kill9")
        return self.faults


@dataclass
class ChaosReport:
    """A run's findings, faults and timings (written as JSON by ``ingest-ray bench chaos``)."""

    config: dict[str, Any]
    findings: Findings
    faults: list[FaultRecord] = field(default_factory=list)
    produce_s: float = 0.0
    settle_s: float = 0.0
    wall_s: float = 0.0
    command: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain data, with recovery times per fault."""
        faults = [{**asdict(r), "recovery_s": r.recovery_s} for r in self.faults]
        recoveries = [r.recovery_s for r in self.faults if r.recovery_s is not None]
        return {
            "command": self.command, "config": self.config,
            "findings": {**asdict(self.findings), "promises_kept": self.findings.promises_kept},
            "faults": faults, "faults_injected": len(self.faults),
            "recovery_s_max": max(recoveries, default=None),
            "recovery_s_mean": sum(recoveries) / len(recoveries) if recoveries else None,
            "produce_s": self.produce_s, "settle_s": self.settle_s, "wall_s": self.wall_s,
        }  # fmt: skip


class Progress(threading.Thread):
    """Samples the completed count twice a second (the ledger may be down meanwhile)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="chaos-progress", daemon=True)
        self._settings = settings
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        ledger = open_ledger(self._settings)
        while not self.stop.wait(0.5):
            try:
                counts = ledger.counts(tenant_id=TENANT)
            except Exception:
                continue
            self.samples.append((time.time(), counts[JobStatus.COMPLETED]))
        ledger.close()

    def completed(self) -> int:
        """The latest completed count (0 before the first sample)."""
        return self.samples[-1][1] if self.samples else 0

    def first_progress_after(self, moment: float) -> float | None:
        """When the completed count first grew after ``moment``."""
        before = max((n for t, n in self.samples if t <= moment), default=0)
        return next((t for t, n in self.samples if t > moment and n > before), None)


class ChaosRun:
    """Set up, produce, inject, settle, check, tear down."""

    def __init__(self, cfg: ChaosConfig, workdir: Path, *, log: Log = print) -> None:
        self.cfg, self.workdir, self.log = cfg, workdir, log
        self.tag = f"chaos-{os.getpid()}-{random.Random().randrange(1 << 24):06x}"
        self.options = RuntimeOptions(name=self.tag)

    def run(self, pdfs: list[Path]) -> ChaosReport:
        """The whole run; the caller's process must be connected to Ray."""
        started = time.time()
        ports = free_ports(3)
        base = Settings()
        stack = LocalStack(
            self.workdir / "stack", base.cache_dir, kafka_version=base.kafka_version,
            kafka_port=ports[0], controller_port=ports[1], redis_port=ports[2],
        )  # fmt: skip
        stack.up(timeout=240)
        postgres = (
            TempPostgres(durable=True, extensions=()) if self.cfg.ledger == "postgres" else None
        )
        try:
            if postgres is not None:
                postgres.start()
            return self._run(stack, postgres, pdfs, started)
        finally:
            if postgres is not None:
                postgres.stop()
            stack.down()

    def _run(
        self, stack: LocalStack, postgres: TempPostgres | None, pdfs: list[Path], started: float
    ) -> ChaosReport:
        settings = self._settings(stack, postgres)
        KafkaClient.from_settings(settings).ensure_topics()
        env = _worker_env(settings, self.workdir / "state")
        workers = Workers(lambda name: _start_worker(name, env, self.workdir),
                          [f"{self.tag}-w{i}" for i in range(self.cfg.workers)])  # fmt: skip
        progress = Progress(settings)
        progress.start()
        try:
            return self._flow(settings, stack, postgres, workers, progress, pdfs, started)
        finally:
            progress.stop.set()
            _stop_workers(workers)

    def _flow(
        self, settings: Settings, stack: LocalStack, postgres: TempPostgres | None,
        workers: Workers, progress: Progress, pdfs: list[Path], started: float,
    ) -> ChaosReport:  # fmt: skip
        cfg = self.cfg
        messages = corpus(cfg.jobs, cfg.pdf_share, cfg.malformed, pdfs, self.workdir, cfg.seed)
        producing = Producing(settings, messages, pace_s=cfg.duration_s * 0.7)
        producing.start()
        injector = Injector(rng=random.Random(cfg.seed), options=self.options, stack=stack,
                            workers=workers, kinds=cfg.fault_kinds(), outage_s=cfg.outage_s,
                            postgres=postgres)  # fmt: skip

        def work_left() -> bool:  # a fault with nothing left to recover measures nothing
            return producing.is_alive() or progress.completed() < len(producing.acked_good())

        faults = self._inject(injector, work_left)
        producing.join(timeout=900)
        produced_at = time.time()
        stack.up(timeout=240)  # every fault reversed
        requested = producing.acked_good()
        self._settle(settings, len(requested))
        settled_at = time.time()
        time.sleep(3)  # the last results leave the outbox
        for record in faults:
            record.progress_at = progress.first_progress_after(record.at)
        findings = check(settings, TENANT, requested, producing.acked_bad())
        return ChaosReport(
            config=asdict(cfg), findings=findings, faults=faults,
            produce_s=produced_at - started, settle_s=settled_at - produced_at,
            wall_s=time.time() - started,
        )  # fmt: skip

    def _inject(self, injector: Injector, work_left: Callable[[], bool]) -> list[FaultRecord]:
        rng = random.Random(self.cfg.seed + 1)
        deadline = time.time() + self.cfg.duration_s
        kinds = list(self.cfg.fault_kinds())
        rng.shuffle(kinds)  # each kind once first, then at random
        faults: list[FaultRecord] = []
        # every kind at least once even when the outages ran past the deadline (bounded by the
        # number of kinds), then at random until the deadline or until every job completed
        while len(faults) < len(kinds) or (time.time() < deadline and work_left()):
            time.sleep(rng.uniform(0.5, 1.5) * self.cfg.fault_every_s)
            kind = kinds[len(faults)] if len(faults) < len(kinds) else None
            left = work_left()
            record = injector.inject(kind)
            record.work_left = left
            self.log(f"fault {len(faults) + 1}: {record.kind} ({record.target}), "
                     f"{record.restored_at - record.at:.1f} s")  # fmt: skip
            faults.append(record)
        return faults

    def _settle(self, settings: Settings, requested: int) -> None:
        """Wait until every requested job is terminal (bounded)."""
        ledger = open_ledger(settings)
        deadline = time.time() + self.cfg.settle_timeout_s
        try:
            while time.time() < deadline:
                try:
                    counts = ledger.counts(tenant_id=TENANT)
                except Exception:
                    time.sleep(1)
                    continue
                terminal = sum(n for s, n in counts.items() if s.is_terminal)
                live = counts[JobStatus.QUEUED] + counts[JobStatus.PROCESSING]
                if terminal >= requested and live == 0:
                    return
                time.sleep(1)
            self.log(f"not settled after {self.cfg.settle_timeout_s:.0f} s: {counts}")
        finally:
            ledger.close()

    def _settings(self, stack: LocalStack, postgres: TempPostgres | None) -> Settings:
        ledger = {} if postgres is None else {"ledger_backend": "postgres",
                                              "postgres_dsn": postgres.dsn}  # fmt: skip
        return Settings(
            **ledger,  # type: ignore[arg-type]
            kafka_bootstrap_servers=stack.kafka.address, redis_url=stack.redis.address,
            redis_prefix="chaos:", runtime_name=self.tag, consumer_group=self.tag,
            topic_partitions=4, metrics_port=-1, state_dir=self.workdir / "state",
            plugins=["ingest_ray.testing:use_flaky_stages"],
            ray_address=ray.get_runtime_context().gcs_address,
            sections={
                "storage": {"blob_url": str(self.workdir / "blobs")},
                "index": {"lancedb_dir": str(self.workdir / "index")},
                "flaky": {"rate": self.cfg.flaky_rate,
                          "stages": ["metadata", "chunk", "embed", "index", "mineru"]},
            },
        )  # fmt: skip


class Producing(threading.Thread):
    """Produces the corpus at an even pace, remembering what the broker acknowledged."""

    def __init__(self, settings: Settings, messages: list[Outgoing], *, pace_s: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self._settings, self._messages, self._pace = settings, messages, pace_s
        self._sent: list[tuple[Outgoing, Future[Any]]] = []

    def run(self) -> None:
        producer = Producer(self._settings.kafka_bootstrap_servers,
                            **{"message.timeout.ms": 600_000})  # fmt: skip
        gap = self._pace / max(1, len(self._messages))
        for message in self._messages:
            value: Any = message.value  # None is a tombstone, one of the malformed kinds
            future = producer.send_raw(self._settings.topic_requests, value, key=message.key)
            self._sent.append((message, future))
            time.sleep(gap)
        with contextlib.suppress(Exception):  # what the broker refused is simply not requested
            producer.close(timeout=600)

    def acked_good(self) -> set[str]:
        """Document keys of good requests the broker acknowledged."""
        return {m.doc_key for m, f in self._sent
                if m.doc_key and f.done() and f.exception() is None}  # fmt: skip

    def acked_bad(self) -> int:
        """Malformed messages the broker acknowledged."""
        return sum(1 for m, f in self._sent
                   if m.doc_key is None and f.done() and f.exception() is None)  # fmt: skip


def _worker_env(settings: Settings, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url, "RAY_ADDRESS": settings.ray_address or "",
        "INGEST_RAY_REDIS_PREFIX": settings.redis_prefix,
        "INGEST_RAY_RUNTIME_NAME": settings.runtime_name,
        "INGEST_RAY_CONSUMER_GROUP": settings.consumer_group,
        "INGEST_RAY_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "INGEST_RAY_STATE_DIR": str(state), "INGEST_RAY_METRICS_PORT": "-1",
        "INGEST_RAY_PLUGINS": json.dumps(settings.plugins),
        "INGEST_RAY_SECTIONS": json.dumps(settings.sections),
        "INGEST_RAY_WORKER_HEARTBEAT_S": "1", "COLUMNS": "200",
        "INGEST_RAY_LEDGER_BACKEND": settings.ledger_backend,
        "INGEST_RAY_POSTGRES_DSN": settings.postgres_dsn,
    }  # fmt: skip


def _start_worker(name: str, env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / f"{name}.log").open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "ingest_ray", "worker", "start", "ingest", "--name", name,
             "--grace", "20"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip


def _stop_workers(workers: Workers) -> None:
    for proc in workers.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers.procs.values():
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
