"""The faults a chaos run injects, one at a time, each reversed by the same means an operator
would use (``ingest-ray stack up`` for a killed broker or Redis, a restart for a worker)."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from ingest_ray.index.pgstack import TempPostgres
from ingest_ray.runtime.actors import find
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.stack.launcher import LocalStack

#: every fault kind, in the order a report lists them
FAULTS = (
    "stage_actor", "dispatcher", "outbox_relay", "ingress_actor",
    "worker_sigkill", "kafka_kill9", "redis_kill9",
)  # fmt: skip


@dataclass
class FaultRecord:
    """One injected fault: when it began, when its cause was gone, when jobs moved again."""

    kind: str
    target: str
    at: float
    restored_at: float = 0.0
    progress_at: float | None = None
    #: whether jobs were still to complete when it hit (after the last one, nothing recovers)
    work_left: bool = True

    @property
    def recovery_s(self) -> float | None:
        """Seconds from the fault to the next completed job."""
        return None if self.progress_at is None else self.progress_at - self.at


class Workers:
    """The worker processes of a run (started, killed and restarted by the harness)."""

    def __init__(self, start: Callable[[str], Any], names: list[str]) -> None:
        self._start = start
        self.procs: dict[str, Any] = {name: start(name) for name in names}

    def sigkill(self, name: str) -> None:
        """Kill without warning, then start again under the same name."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(2.0)
        self.procs[name] = self._start(name)


class Injector:
    """Picks and injects faults; every fault is over (restarted) when :meth:`inject` returns."""

    def __init__(
        self,
        *,
        rng: random.Random,
        options: RuntimeOptions,
        stack: LocalStack,
        workers: Workers,
        kinds: tuple[str, ...] = FAULTS,
        outage_s: float = 10.0,
        postgres: TempPostgres | None = None,
    ) -> None:
        self.rng, self.options, self.stack, self.workers = rng, options, stack, workers
        self.kinds = kinds
        self.outage_s = outage_s
        self.postgres = postgres

    def inject(self, kind: str | None = None) -> FaultRecord:
        """One fault of ``kind`` (a random one by default)."""
        kind = kind or self.rng.choice(self.kinds)
        record = FaultRecord(kind, "", time.time())
        record.target = getattr(self, f"_{kind}")()
        record.restored_at = time.time()
        return record

    # --- Ray actors ---------------------------------------------------------------------------

    def _kill_named(self, name: str) -> str:
        handle = find(name, self.options.namespace)
        if handle is not None:
            ray.kill(handle, no_restart=True)
        return name

    def _stage_actor(self) -> str:
        names = self._stage_actor_names()
        return self._kill_named(self.rng.choice(names)) if names else "(none alive)"

    def _stage_actor_names(self) -> list[str]:
        """Pool actors, as the Dispatcher knows them (no dashboard needed)."""
        dispatcher = find(self.options.dispatcher_name, self.options.namespace)
        try:
            pools = ray.get(dispatcher.stats.remote(), timeout=10).pools if dispatcher else {}
        except Exception:  # restarting: nothing to pick this time
            return []
        return [name for pool in pools.values() for name in pool.actors]

    def _dispatcher(self) -> str:
        return self._kill_named(self.options.dispatcher_name)

    def _outbox_relay(self) -> str:
        return self._kill_named(self.options.relay_name)

    def _ingress_actor(self) -> str:
        names = [self.options.ingress_name(w, 0) for w in sorted(self.workers.procs)]
        names = [n for n in names if find(n, self.options.namespace) is not None]
        return self._kill_named(self.rng.choice(names)) if names else "(none alive)"

    # --- processes ----------------------------------------------------------------------------

    def _worker_sigkill(self) -> str:
        name = self.rng.choice(sorted(self.workers.procs))
        self.workers.sigkill(name)
        return name

    def _kill9(self, service: Any) -> str:
        record = self.stack.process(service).record()
        if record is not None:
            os.kill(record.pid, signal.SIGKILL)
        time.sleep(self.outage_s)
        self.stack.up(timeout=180)  # what `ingest-ray stack up` does
        return f"{service.name} pid {record.pid if record else '?'}"

    def _kafka_kill9(self) -> str:
        return self._kill9(self.stack.kafka)

    def _redis_kill9(self) -> str:
        return self._kill9(self.stack.redis)

    def _postgres_kill9(self) -> str:
        """The PostgreSQL ledger's postmaster (and its backends) killed with SIGKILL, restarted
        after the outage on the same data directory (crash recovery from the WAL)."""
        if self.postgres is None:
            return "(no PostgreSQL ledger)"
        pid = self.postgres.postmaster_pid()
        self.postgres.kill()
        time.sleep(self.outage_s)
        self.postgres.restart()
        return f"postgres pid {pid}"
