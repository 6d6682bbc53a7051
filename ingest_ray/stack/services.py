"""The two services of the local stack: a KRaft Kafka broker and a Redis with AOF.

Each service knows how to prepare its files, the command that runs it in the foreground, and
how to tell that it answers. The launcher (``launcher.py``) does the process bookkeeping.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import redis

from ingest_ray.errors import StackError
from ingest_ray.kafka.health import check_kafka
from ingest_ray.ports import LOOPBACK


class Service(Protocol):
    """What the launcher needs from a service."""

    name: str

    @property
    def address(self) -> str: ...

    @property
    def marker(self) -> str: ...

    def prepare(self) -> None: ...

    def command(self) -> list[str]: ...

    def ready(self) -> bool: ...


@dataclass
class KafkaService:
    """Apache Kafka in KRaft combined mode (broker + controller), one node, loopback only."""

    home: Path
    cache_dir: Path
    version: str
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    name: str = "kafka"
    # C1 only: on a 2-core machine the C2 compiler was the broker's largest CPU user (17 of 43 CPU
    # s from start through 9,000 messages at 200/s); with C1 alone the same took 24.5 CPU s, and
    # less at full rate too (docs/benchmarks.md, "The local Kafka broker")
    jvm_flags: tuple[str, ...] = ("-XX:+UseG1GC", "-XX:TieredStopAtLevel=1")

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    @property
    def marker(self) -> str:
        return str(self.config_path)

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"kafka-{self.version}" / "libs"

    def prepare(self) -> None:
        """Fetch the jars if needed, write the config, format storage on first start."""
        self.ensure_jars()
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._properties())
        log4j = self.home / "log4j2.properties"
        log4j.write_text(_resource("log4j2.properties"))
        if not (self.home / "data" / "meta.properties").exists():
            self._format()

    def ensure_jars(self) -> Path:
        """Resolve the broker jars from Maven Central into the cache (once per version)."""
        done = self.libs.parent / ".complete"
        if done.exists():
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("Maven ('mvn') is needed once to fetch the Kafka jars; install it")
        self.libs.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.libs.parent) as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(_resource("kafka-pom.xml"))
            out = Path(tmp) / "libs"
            result = subprocess.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-Dkafka.version={self.version}",
                    f"-DoutputDirectory={out}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0 or not any(out.glob(f"kafka_2.13-{self.version}.jar")):
                raise StackError(
                    f"could not resolve Kafka {self.version} from Maven Central:\n"
                    + (result.stdout + result.stderr)[-3000:]
                )
            shutil.rmtree(self.libs, ignore_errors=True)
            out.rename(self.libs)
        done.write_text(self.version)
        return self.libs

    def command(self) -> list[str]:
        return [
            _java(),
            f"-Xmx{self.heap}",
            "-Xms128m",
            *self.jvm_flags,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.config_path),
        ]

    def ready(self) -> bool:
        return check_kafka(self.address, timeout=2.0, topics=()).brokers > 0

    def _format(self) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                _java(),
                "-cp",
                f"{self.libs}/*",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                f"--config={self.config_path}",
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise StackError("formatting Kafka storage failed:\n" + result.stdout + result.stderr)

    def _properties(self) -> str:
        return "\n".join(
            [
                "# written by `ingest-ray stack up`; edits are overwritten",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{LOOPBACK}:{self.controller_port}",
                f"listeners=PLAINTEXT://{LOOPBACK}:{self.port},"
                f"CONTROLLER://{LOOPBACK}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                "num.partitions=6",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=10",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )


@dataclass
class RedisService:
    """Redis on loopback with append-only persistence. ``appendfsync`` is ``everysec`` (a
    killed process loses nothing it acknowledged; a power loss up to about one second) or
    ``always`` (fsync before every reply: nothing is lost, at a cost per write)."""

    home: Path
    port: int = 6379
    name: str = "redis"
    appendfsync: str = "everysec"

    @property
    def address(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def config_path(self) -> Path:
        return self.home / "redis.conf"

    @property
    def marker(self) -> str:
        # redis-server rewrites its argv to "redis-server 127.0.0.1:PORT"; match on that
        return f"{LOOPBACK}:{self.port}"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    "# written by `ingest-ray stack up`; edits are overwritten",
                    f"bind {LOOPBACK}",
                    f"port {self.port}",
                    "protected-mode yes",
                    "daemonize no",
                    f"dir {self.home}",
                    "appendonly yes",
                    f"appendfsync {self.appendfsync}",
                    "save 900 1",
                    "",
                ]
            )
        )

    def command(self) -> list[str]:
        return [_redis_server(), str(self.config_path)]

    def ready(self) -> bool:
        client = redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=1.0)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


def _redis_server() -> str:
    for candidate in (
        shutil.which("redis-server"),
        "/usr/sbin/redis-server",
        "/usr/bin/redis-server",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise StackError(
        "redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server; "
        "macOS: brew install redis) or point REDIS_URL at a Redis you run"
    )


def _java() -> str:
    """The ``java`` executable, checked to be 17 or newer."""
    java = shutil.which("java")
    if java is None:
        raise StackError("Java 17+ is needed for the local Kafka broker; install a JDK/JRE 17")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if match and int(match.group(1)) < 17:
        raise StackError(f"Kafka 4 needs Java 17+, found: {out.splitlines()[0]}")
    return java


def _resource(name: str) -> str:
    return resources.files("ingest_ray.stack").joinpath(name).read_text()
