"""The local stack launcher, on ports of its own so the session's stack is left alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ingest_ray.config import Settings
from ingest_ray.kafka import check_kafka, ensure_topics
from ingest_ray.ports import free_ports
from ingest_ray.stack.launcher import LocalStack


@pytest.fixture(scope="module")
def second_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state: Path = tmp_path_factory.mktemp("stack")
    kafka_port, controller_port, redis_port = free_ports(3)
    stack = LocalStack(
        state,
        Settings().cache_dir,  # share the jar cache with the session's stack
        kafka_version=Settings().kafka_version,
        kafka_port=kafka_port,
        controller_port=controller_port,
        redis_port=redis_port,
    )
    stack.up(timeout=180)
    yield stack
    stack.down()


def test_stack_up_is_idempotent_and_reports_ready(second_stack: LocalStack) -> None:
    before = {s.name: s.pid for s in second_stack.status()}
    kafka_argv = Path(f"/proc/{before['kafka']}/cmdline").read_bytes().split(b"\0")
    assert b"-XX:TieredStopAtLevel=1" in kafka_argv  # the broker runs, compiled with C1 only
    after = second_stack.up(timeout=60)
    assert {s.name: s.pid for s in after} == before
    assert all(s.ready and s.pid for s in after)


def test_stack_redis_persists_with_aof(second_stack: LocalStack) -> None:
    client = redis.Redis(port=second_stack.redis.port)
    config = client.config_get("append*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    client.close()


def test_stack_kafka_takes_topics_and_stops_cleanly(second_stack: LocalStack) -> None:
    address = second_stack.kafka.address
    ensure_topics(address, ["t.a"], partitions=2)
    assert check_kafka(address, timeout=5, topics=["t.a"]).ok
    second_stack.down()
    assert [s.pid for s in second_stack.status()] == [None, None]
    stopped = check_kafka(address, timeout=2.0, topics=["t.a"])
    assert not stopped.ok
    assert stopped.elapsed_s < 3.0
    # and it comes back with its data (storage is formatted only once)
    second_stack.up(timeout=180)
    assert check_kafka(address, timeout=10, topics=["t.a"]).ok
