"""``ingest-ray up`` brings the whole local service up and takes all of it down again.

The test gives ``up`` Kafka and Redis addresses on free loopback ports, so it starts its own
stack (the JVM and redis-server become its children), then checks from outside what a user
would: the dashboard answers, the Ray dashboard answers, a job submitted with the printed key
runs to ``completed`` (the workers are up), and after SIGTERM (first run) or SIGINT (second
run, started as a shell's background job) every process it started is gone. The second run
shows the same key again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.test_shutdown import BACKGROUND_JOB, READY_S, stop_and_check, terminate
from tests.processes import snapshot

KEY = re.compile(r"API key\s+(irk_\S+)")
RAY_DASHBOARD = re.compile(r"Ray dashboard\s+(http://\S+)")


def _free_ports(n: int, *, consecutive: bool = False) -> list[int]:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        wanted = [base + i for i in range(n)] if consecutive else [base]
        if all(_free(p) for p in wanted):
            return wanted
    raise AssertionError("no free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Up:
    env: dict[str, str]
    port: int
    tmp: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *, background: bool) -> tuple[subprocess.Popen[bytes], Path]:
        out = self.tmp / f"up-{uuid.uuid4().hex[:6]}.out"
        args = ["up", "--port", str(self.port)]
        argv = [sys.executable, "-c", BACKGROUND_JOB, *args] if background else [
            sys.executable, "-m", "ingest_ray", *args]  # fmt: skip
        with out.open("wb") as fh, (self.tmp / "up.err").open("ab") as err:
            proc = subprocess.Popen(argv, env=self.env, stdout=fh, stderr=err)
        self.started.append(proc)
        return proc, out


@pytest.fixture(scope="module")
def up_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("up")
    kafka, _controller = _free_ports(2, consecutive=True)
    (redis_port,) = _free_ports(1)
    (api_port,) = _free_ports(1)
    sections = {"storage": {"blob_url": str(tmp / "blobs")},
                "index": {"lancedb_dir": str(tmp / "lancedb")}}  # fmt: skip
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "INGEST_RAY_STATE_DIR": str(tmp / "st"),
        "INGEST_RAY_TOPIC_PARTITIONS": "1", "INGEST_RAY_METRICS_PORT": "0",
        "INGEST_RAY_DRAIN_GRACE_S": "5", "INGEST_RAY_SECTIONS": json.dumps(sections),
        "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "200",
    }  # fmt: skip
    for name in ("RAY_ADDRESS", "INGEST_RAY_REDIS_PREFIX", "INGEST_RAY_API_KEY"):
        env.pop(name, None)
    up = Up(env, api_port, tmp)
    yield up
    terminate(up.started)


def _ready(proc: subprocess.Popen[bytes], out: Path) -> str:
    deadline = time.monotonic() + READY_S + 180  # it starts Kafka too
    while not KEY.search(out.read_text(errors="replace")):
        assert proc.poll() is None, f"up exited early ({proc.returncode}): {out.read_text()}"
        assert time.monotonic() < deadline, "up did not print its key in time"
        time.sleep(1.0)
    return out.read_text(errors="replace")


def _wait_completed(url: str, key: str, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 300
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        while True:
            job = http.get(f"/jobs/{job_id}", timeout=10).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return dict(job)
            assert time.monotonic() < deadline, f"job still {job['status']}"
            time.sleep(1.0)


def test_up_runs_everything_and_stops_everything(up_env: Up) -> None:
    proc, out = up_env.start(background=False)
    text = _ready(proc, out)
    key = KEY.search(text).group(1)  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{up_env.port}"
    assert "created now" in text
    (saved,) = (up_env.tmp / "st" / "up").glob("api-key-*.json")
    assert saved.stat().st_mode & 0o777 == 0o600 and key in saved.read_text()
    assert httpx.get(f"{url}/", timeout=10).status_code == 200
    ray_dashboard = RAY_DASHBOARD.search(text)
    assert ray_dashboard and ray_dashboard.group(1).startswith("http://127.0.0.1:")
    assert httpx.get(ray_dashboard.group(1), timeout=10).status_code == 200
    item = {"source": {"kind": "text", "value": "ingest-ray up runs every worker"},
            "pipeline": "auto"}  # fmt: skip
    reply = httpx.post(f"{url}/jobs", json=item, headers={"Authorization": f"Bearer {key}"},
                       timeout=30)  # fmt: skip
    assert reply.status_code == 202, reply.text
    job = _wait_completed(url, key, reply.json()["jobs"][0]["job_id"])
    assert job["status"] == "completed", job
    names = {p.name for p in snapshot(proc.pid)[0]}
    assert "java" in names and "redis-server" in names  # the stack is part of what it started
    stop_and_check(proc, signal.SIGTERM, ray=True)
    assert not _answers(up_env.port)

    again, out = up_env.start(background=True)
    text = _ready(again, out)
    assert KEY.search(text).group(1) == key  # type: ignore[union-attr]
    assert "saved in" in text
    stop_and_check(again, signal.SIGINT, ray=True)


def _answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True
