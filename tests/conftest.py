"""Service fixtures shared by every test directory.

Kafka and Redis come from ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` when set; otherwise the
project's own local stack is started (``ingest-ray stack up``); where neither works and a Docker
engine answers, testcontainers provides them. PostgreSQL for the ledger comes from
``LEDGER_POSTGRES_DSN`` when set, else a throw-away cluster (``TempPostgres``, no extension
needed) is started once per session; each test gets a schema of its own. Under ``CI=true`` a
missing service fails the run instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import KafkaException
from psycopg import sql

from ingest_ray.config import Settings
from ingest_ray.errors import IngestError
from ingest_ray.index.pgstack import TempPostgres
from ingest_ray.kafka.admin import admin_client, delete_topics, ensure_topics
from ingest_ray.kafka.health import check_kafka
from ingest_ray.ledger.postgres import PostgresLedger
from ingest_ray.ledger.redis import RedisLedger
from ingest_ray.stack.launcher import LocalStack
from tests.s3server import S3Server, moto_available


def _fixtures_dir() -> Path:
    """INGEST_RAY_TEST_FIXTURES when set, else the nearest ancestor of this checkout that has
    ``shared/fixtures`` (``/work/shared`` for ``/work/main`` and for worktrees beside it), else
    the same beside the checkout this one was cloned from (``git clone /work/main /tmp/fresh``)."""
    if os.environ.get("INGEST_RAY_TEST_FIXTURES"):
        return Path(os.environ["INGEST_RAY_TEST_FIXTURES"])
    here = Path(__file__).resolve()
    for start in (here, _origin_checkout(here.parents[1])):
        for parent in start.parents if start is not None else ():
            if (parent / "shared" / "fixtures").is_dir():
                return parent / "shared" / "fixtures"
    return here.parents[1].parent / "shared" / "fixtures"


def _origin_checkout(repo: Path) -> Path | None:
    """The local checkout ``repo`` was cloned from (its ``origin`` is a directory), if any."""
    try:
        url = subprocess.run(
            ["git", "-C", str(repo), "config", "--get", "remote.origin.url"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    origin = Path(url.removeprefix("file://")) if url else None
    return origin.resolve() / "tests" if origin is not None and origin.is_dir() else None


#: the shared fixtures (real PDFs and captured API responses; see SOURCES.md there)
FIXTURES = _fixtures_dir()


def in_ci() -> bool:
    """Whether this run is CI, where nothing may be skipped for want of a service."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Services:
    """Where the real Kafka and Redis of this test session are."""

    kafka_bootstrap: str
    redis_url: str
    origin: str


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"required service unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"services unavailable: {reason}")


def _problems(kafka: str, redis_url: str) -> list[str]:
    problems = []
    health = check_kafka(kafka, timeout=10.0, topics=())
    if health.brokers == 0:
        problems.append(f"Kafka at {kafka}: {health.error}")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {redis_url}: {exc}")
    return problems


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    return result.returncode == 0


#: The prefix of every topic a test makes (``new_topics`` and the runtime settings of tests).
TEST_TOPIC_PREFIX = "test."


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Real Kafka and Redis for the session; afterwards, the test topics made during it are
    deleted. Left behind, they pile up on a developer's broker: after some weeks of runs, 360
    of them (790 partitions) cost its controller 0.3 of a core while idle, on a 2-core machine
    that the benchmarks measure."""
    for found in _find_services():
        before = _topic_names(found.kafka_bootstrap)
        yield found
        try:
            made = sorted(_topic_names(found.kafka_bootstrap) - before)
            delete_topics(
                found.kafka_bootstrap, [t for t in made if t.startswith(TEST_TOPIC_PREFIX)]
            )
        except KafkaException as exc:  # the tests' verdict stands; the leftovers are reported
            warnings.warn(f"test topics not deleted: {exc}", stacklevel=1)


def _topic_names(bootstrap: str) -> set[str]:
    return set(admin_client(bootstrap).list_topics(timeout=30).topics)


def _find_services() -> Iterator[Services]:
    """Real Kafka and Redis, from the environment, the local stack, or testcontainers."""
    kafka, redis_url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("REDIS_URL")
    if kafka and redis_url:
        problems = _problems(kafka, redis_url)
        if problems:
            _unavailable("; ".join(problems))
        yield Services(kafka, redis_url, "environment")
        return
    try:
        stack = LocalStack.from_settings(Settings())
        stack.up(timeout=180)
        yield Services(
            kafka or stack.kafka.address, redis_url or stack.redis.address, "local stack"
        )
        return
    except IngestError as exc:
        stack_error = str(exc)
    if _docker_engine():
        yield from _containers()
        return
    _unavailable(f"local stack could not start ({stack_error}) and no Docker engine answers")


def _containers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    with KafkaContainer().with_kraft() as kafka, RedisContainer() as red:
        host, port = red.get_container_host_ip(), red.get_exposed_port(6379)
        yield Services(kafka.get_bootstrap_server(), f"redis://{host}:{port}/0", "testcontainers")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible HTTP server (moto's server mode) on loopback, for the session.
    Each test makes its own bucket (``s3_server.new_bucket()``)."""
    reason = moto_available()
    if reason is not None:
        _unavailable(f"S3 test server: {reason}")
    server = S3Server()
    try:
        server.start()
    except RuntimeError as exc:
        _unavailable(f"S3 test server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server's credentials and endpoint in this process's environment (AWS_*)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    return services.redis_url


@pytest.fixture(scope="session")
def kafka_bootstrap(services: Services) -> str:
    return services.kafka_bootstrap


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture
def redis_ledger(redis_url: str, redis_prefix: str) -> Iterator[RedisLedger]:
    ledger = RedisLedger(redis_url, prefix=redis_prefix)
    yield ledger
    ledger.close()


@pytest.fixture(scope="session")
def pg_ledger_dsn() -> Iterator[str]:
    """A PostgreSQL for ledger tests: ``LEDGER_POSTGRES_DSN``, or a cluster of this session."""
    dsn = os.environ.get("LEDGER_POSTGRES_DSN")
    if dsn:
        try:
            psycopg.connect(dsn, connect_timeout=10).close()
        except psycopg.Error as exc:
            _unavailable(f"PostgreSQL at LEDGER_POSTGRES_DSN={dsn}: {exc}")
        yield dsn
        return
    cluster = TempPostgres(extensions=())
    try:
        cluster.start()
    except IngestError as exc:
        _unavailable(f"PostgreSQL: {exc}")
    try:
        yield cluster.dsn
    finally:
        cluster.stop()


@pytest.fixture
def pg_schema(pg_ledger_dsn: str) -> Iterator[str]:
    """A ledger schema of this test's own, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(pg_ledger_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def pg_ledger(pg_ledger_dsn: str, pg_schema: str) -> Iterator[PostgresLedger]:
    ledger = PostgresLedger(pg_ledger_dsn, schema=pg_schema)
    yield ledger
    ledger.close()


@pytest.fixture
def new_topics(kafka_bootstrap: str) -> Callable[..., list[str]]:
    """Create fresh, uniquely named topics for one test."""

    def make(*names: str, partitions: int = 3) -> list[str]:
        tag = uuid.uuid4().hex[:10]
        topics = [f"test.{tag}.{name}" for name in names]
        ensure_topics(kafka_bootstrap, topics, partitions=partitions, replication=1)
        return topics

    return make


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """One local Ray for the whole session (the runtime tests' actors live in it). Logical CPUs,
    not cores: two runtimes may be alive at once (the dashboard's package-scoped one and a
    module's own), and each keeps ``min_size`` actors of every pool (4.5 CPUs of requests for
    the built-in pools), so 8 left a second runtime's embed actor unplaceable."""
    import ray

    ray.init(
        num_cpus=16, include_dashboard=False, log_to_driver=False, namespace="ingest-ray-tests"
    )
    yield
    ray.shutdown()


_CONTROL_PLANE = ("/dispatcher", "/ledger-cache", "/outbox-relay")


@pytest.fixture(autouse=True)
def _no_control_plane_left_behind() -> Iterator[None]:
    """A test that fails before its runtime stopped must not leave a detached control plane
    (and its stage pools) running for the rest of the session: stop the ones it created."""
    import ray

    before = _control_planes() if ray.is_initialized() else set()
    yield
    if not ray.is_initialized():
        return
    for namespace, name in _control_planes() - before:
        with contextlib.suppress(Exception):
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)


def _control_planes() -> set[tuple[str, str]]:
    import ray.util

    try:
        actors = ray.util.list_named_actors(all_namespaces=True)
    except Exception:
        return set()
    return {(a["namespace"], a["name"]) for a in actors if a["name"].endswith(_CONTROL_PLANE)}
