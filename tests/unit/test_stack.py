from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingest_ray.stack.launcher import LocalStack
from ingest_ray.stack.process import ManagedProcess


def _stack(tmp_path: Path) -> LocalStack:
    return LocalStack(
        tmp_path / "state", tmp_path / "cache", kafka_version="4.1.1",
        kafka_port=19092, controller_port=19093, redis_port=16379,
    )  # fmt: skip


def test_kafka_config_is_kraft_combined_on_loopback_only(tmp_path: Path) -> None:
    props = _stack(tmp_path).kafka._properties()
    assert "process.roles=broker,controller" in props
    assert "controller.quorum.voters=1@127.0.0.1:19093" in props
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in props
    assert "0.0.0.0" not in props and "zookeeper" not in props


def test_kafka_jvm_compiles_with_c1_only_unless_told_otherwise(tmp_path: Path) -> None:
    kafka = _stack(tmp_path).kafka
    argv = kafka.command()
    assert "-XX:TieredStopAtLevel=1" in argv and argv.index("-XX:TieredStopAtLevel=1") < argv.index(
        "kafka.Kafka"
    )  # a JVM flag, before the main class
    kafka.jvm_flags = ("-XX:+UseG1GC",)
    assert not any("Tiered" in a for a in kafka.command())


def test_redis_config_has_aof_everysec_on_loopback(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    stack.redis.prepare()
    conf = stack.redis.config_path.read_text().splitlines()
    assert {"appendonly yes", "appendfsync everysec", "bind 127.0.0.1", "port 16379"} <= set(conf)


def test_managed_process_never_signals_a_pid_that_is_not_its_own(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = ManagedProcess("redis", tmp_path / "run", tmp_path / "log")
        proc.pid_path.parent.mkdir(parents=True)
        proc.pid_path.write_text(json.dumps({"pid": stranger.pid, "marker": "/our/config"}))
        assert proc.record() is None
        assert proc.stop(timeout=1) is False
        assert stranger.poll() is None, "a process we did not start was signalled"
        assert not proc.pid_path.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_managed_process_starts_finds_and_stops_its_own(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "out.log")
    marker = str(tmp_path / "marker-arg")
    pid = proc.start(
        [sys.executable, "-c", "import time, sys; time.sleep(60)", marker], marker=marker
    )
    rec = proc.record()
    assert rec is not None and rec.pid == pid
    assert proc.stop(timeout=5) is True
    assert proc.record() is None


def test_status_of_a_stack_that_never_started(tmp_path: Path) -> None:
    statuses = _stack(tmp_path).status()
    assert [(s.name, s.pid, s.ready) for s in statuses] == [
        ("redis", None, False),
        ("kafka", None, False),
    ]
