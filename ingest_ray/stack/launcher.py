"""``ingest-ray stack up | down | status``: the local Kafka + Redis stack, without Docker.

``up`` is idempotent: a service already running from this state dir is reused, a port taken by
someone else is an error (never silently shared). ``down`` stops only processes recorded in this
state dir's pid files.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest_ray.config import Settings
from ingest_ray.errors import StackError
from ingest_ray.ports import LOOPBACK
from ingest_ray.stack.process import ManagedProcess
from ingest_ray.stack.services import KafkaService, RedisService, Service


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One line of ``stack status``."""

    name: str
    address: str
    pid: int | None
    ready: bool
    log: Path


class LocalStack:
    """Kafka and Redis under one state dir."""

    def __init__(
        self,
        state_dir: Path,
        cache_dir: Path,
        *,
        kafka_version: str,
        kafka_port: int = 9092,
        controller_port: int = 9093,
        redis_port: int = 6379,
        redis_appendfsync: str = "everysec",
    ) -> None:
        self.state_dir = state_dir
        self.kafka = KafkaService(
            home=state_dir / "kafka",
            cache_dir=cache_dir,
            version=kafka_version,
            port=kafka_port,
            controller_port=controller_port,
        )
        if redis_appendfsync not in ("everysec", "always"):
            raise StackError(f"appendfsync must be everysec or always, not {redis_appendfsync!r}")
        self.redis = RedisService(
            home=state_dir / "redis", port=redis_port, appendfsync=redis_appendfsync
        )
        self.services: tuple[Service, ...] = (self.redis, self.kafka)

    @classmethod
    def from_settings(cls, settings: Settings, **ports: int) -> LocalStack:
        """The stack under ``settings.state_dir / 'stack'``."""
        return cls(
            settings.state_dir / "stack",
            settings.cache_dir,
            kafka_version=settings.kafka_version,
            redis_appendfsync=settings.redis_appendfsync,
            **ports,
        )

    def process(self, service: Service) -> ManagedProcess:
        """The pid-file bookkeeping for one service."""
        return ManagedProcess(
            service.name, self.state_dir / "run", self.state_dir / "logs" / f"{service.name}.out"
        )

    def up(
        self, *, timeout: float = 120.0, echo: Callable[[str], None] = lambda _: None
    ) -> list[ServiceStatus]:
        """Start what is not running, wait until everything answers, return the statuses."""
        for service in self.services:
            self._start(service, echo)
        for service in self.services:
            self._wait_ready(service, timeout)
        return self.status()

    def down(self, *, echo: Callable[[str], None] = lambda _: None) -> None:
        """Stop the services this stack started, newest first."""
        for service in reversed(self.services):
            stopped = self.process(service).stop()
            echo(f"{service.name}: {'stopped' if stopped else 'not running'}")

    def status(self) -> list[ServiceStatus]:
        """Pid, address and readiness of each service."""
        out = []
        for service in self.services:
            proc = self.process(service)
            rec = proc.record()
            out.append(
                ServiceStatus(
                    name=service.name,
                    address=service.address,
                    pid=rec.pid if rec else None,
                    ready=rec is not None and service.ready(),
                    log=proc.log_path,
                )
            )
        return out

    def _start(self, service: Service, echo: Callable[[str], None]) -> None:
        proc = self.process(service)
        rec = proc.record()
        if rec is not None:
            echo(f"{service.name}: already running (pid {rec.pid}) at {service.address}")
            return
        for port in _ports(service):
            if _port_in_use(port):
                raise StackError(
                    f"{service.name}: port {port} on {LOOPBACK} is taken by a process this stack "
                    f"did not start; stop it, or point the settings at it instead of `stack up`"
                )
        echo(f"{service.name}: preparing")
        service.prepare()
        pid = proc.start(service.command(), marker=service.marker)
        echo(f"{service.name}: started (pid {pid}), log {proc.log_path}")

    def _wait_ready(self, service: Service, timeout: float) -> None:
        proc = self.process(service)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.ready():
                return
            if not proc.alive():
                raise StackError(f"{service.name} exited during start-up:\n{proc.tail()}")
            time.sleep(0.5)
        raise StackError(f"{service.name} did not answer within {timeout:.0f}s:\n{proc.tail()}")


def _ports(service: Service) -> list[int]:
    if isinstance(service, KafkaService):
        return [service.port, service.controller_port]
    if isinstance(service, RedisService):
        return [service.port]
    return []


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0
