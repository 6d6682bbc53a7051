"""Every long-running command leaves no process behind after SIGINT or SIGTERM.

Each command runs as a subprocess with SIGINT ignored, as a non-interactive shell starts a
background job (``ingest-ray serve &``): the command must handle SIGINT itself. Once it is
ready, the test records its descendants and every process of the Ray session it started,
signals it, waits (bounded) for it to exit and checks that none of those processes runs any
more, and that no process holds a file of its Ray session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from ingest_ray.config import Settings
from ingest_ray.ports import free_port
from ingest_ray.samples import write_samples
from ingest_ray.workers.base import read_health
from tests.conftest import Services
from tests.processes import Proc, end, session_members, snapshot, wait_gone

READY_S = 240.0
EXIT_S = 120.0


@dataclass
class Command:
    """A command under test and the settings its environment gives it."""

    settings: Settings
    env: dict[str, str]
    port: int
    tmp: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{args[0]}-{uuid.uuid4().hex[:6]}.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", BACKGROUND_JOB, *args], env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.started.append(proc)
        return proc


def terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    """After a failed test: SIGTERM what still runs (it cleans up after itself), then kill."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=EXIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


#: what a shell does for ``cmd &`` without job control: SIGINT ignored, then exec (an ignored
#: signal stays ignored across exec)
BACKGROUND_JOB = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, '-m', 'ingest_ray', *sys.argv[1:]])"
)


@pytest.fixture
def command(services: Services, tmp_path: Path) -> Iterator[Command]:
    tag = uuid.uuid4().hex[:8]
    prefix = f"test:shut:{tag}:"
    port = free_port()
    sections = {"storage": {"blob_url": str(tmp_path / "blobs")},
                "index": {"lancedb_dir": str(tmp_path / "lancedb")}}  # fmt: skip
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap,
        "REDIS_URL": services.redis_url, "INGEST_RAY_REDIS_PREFIX": prefix,
        "INGEST_RAY_STATE_DIR": str(tmp_path / "state"), "INGEST_RAY_RUNTIME_NAME": f"shut-{tag}",
        "INGEST_RAY_CONSUMER_GROUP": f"shut-{tag}", "INGEST_RAY_TOPIC_PARTITIONS": "1",
        "INGEST_RAY_TOPIC_REQUESTS": f"test.{tag}.requests",
        "INGEST_RAY_TOPIC_RESULTS": f"test.{tag}.results",
        "INGEST_RAY_TOPIC_MAPPING": f"test.{tag}.mapping",
        "INGEST_RAY_TOPIC_DEADLETTER": f"test.{tag}.dlq", "INGEST_RAY_METRICS_PORT": "0",
        "INGEST_RAY_API_PORT": str(port), "INGEST_RAY_RAY_LOCAL_NUM_CPUS": "4",
        "INGEST_RAY_DRAIN_GRACE_S": "3", "INGEST_RAY_SECTIONS": json.dumps(sections),
        "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "120",
    }  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    settings = Settings(kafka_bootstrap_servers=services.kafka_bootstrap,
                        redis_url=services.redis_url, redis_prefix=prefix)  # fmt: skip
    cmd = Command(settings, env, port, tmp_path)
    yield cmd
    terminate(cmd.started)
    client = redis.Redis.from_url(services.redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_S
    while not ready():
        assert proc.poll() is None, f"{what} exited early with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} was not ready within {READY_S:.0f}s"
        time.sleep(0.5)


def _api_ready(cmd: Command) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{cmd.port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def _worker_ready(cmd: Command, kind: str) -> Callable[[], bool]:
    return lambda: any(h.alive and h.kind == kind for h in read_health(cmd.settings))


def _job_admitted(cmd: Command) -> Callable[[], bool]:
    def ready() -> bool:
        client = redis.Redis.from_url(cmd.settings.redis_url)
        try:
            return bool(client.zcard(f"{cmd.settings.redis_prefix}idx:all"))
        finally:
            client.close()

    return ready


def stop_and_check(proc: subprocess.Popen[bytes], sig: signal.Signals, *, ray: bool) -> None:
    """Signal ``proc``; it exits, and every process it started is gone."""
    time.sleep(1.0)  # let late starters (Serve replicas, idle workers) appear
    before, sessions = snapshot(proc.pid)
    try:
        assert len(sessions) == (1 if ray else 0), sessions
        proc.send_signal(sig)
        code = proc.wait(timeout=EXIT_S)
        assert code in (0, 128 + sig), f"exit code {code}"
        left = wait_gone(before, 15.0)
        assert left == set(), f"still running after {sig.name}: {sorted(left, key=_key)}"
        for session in sessions:
            assert session_members(session) == set(), f"processes of {session} remain"
    finally:
        if proc.poll() is None:
            proc.kill()
        end(before)


def _key(p: Proc) -> int:
    return p.pid


SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_shutdown_serve_leaves_nothing(command: Command, sig: signal.Signals) -> None:
    proc = command.start("serve", "--port", str(command.port))
    _wait(_api_ready(command), proc, "serve")
    stop_and_check(proc, sig, ray=True)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_shutdown_worker_ingest_leaves_nothing(command: Command, sig: signal.Signals) -> None:
    proc = command.start("worker", "start", "ingest")
    _wait(_worker_ready(command, "ingest"), proc, "worker start ingest")
    stop_and_check(proc, sig, ray=True)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_shutdown_worker_mapping_leaves_nothing(command: Command, sig: signal.Signals) -> None:
    proc = command.start("worker", "start", "mapping")
    _wait(_worker_ready(command, "mapping"), proc, "worker start mapping")
    stop_and_check(proc, sig, ray=False)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_shutdown_ingest_leaves_nothing(command: Command, sig: signal.Signals) -> None:
    (pdf, *_) = write_samples(command.tmp / "pdfs")
    proc = command.start("ingest", str(pdf))
    _wait(_job_admitted(command), proc, "ingest")
    stop_and_check(proc, sig, ray=True)
