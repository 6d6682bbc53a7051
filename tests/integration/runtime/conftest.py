"""A local Ray for the runtime tests, and runtimes isolated by name, Redis prefix and topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from ingest_ray.config import Settings
from ingest_ray.events import DocumentSource, IngestRequest, SourceKind
from ingest_ray.kafka import KafkaClient, Producer
from ingest_ray.ledger import Job, JobFilter
from ingest_ray.ledger.base import Ledger
from ingest_ray.ledger.factory import open_ledger
from ingest_ray.pipelines.builtin import STAGE_FACTORIES, builtin_catalog
from ingest_ray.pipelines.catalog import Catalog
from ingest_ray.runtime.options import RuntimeOptions
from ingest_ray.runtime.runtime import Runtime
from tests.conftest import Services

SCRIPTED = {name: "ingest_ray.testing:ScriptedStage" for name in STAGE_FACTORIES}


@dataclass
class Env:
    """One isolated runtime environment."""

    settings: Settings
    options: RuntimeOptions
    ledger: Ledger
    redis: redis.Redis

    def catalog(self) -> Catalog:
        return builtin_catalog(self.settings, factories=SCRIPTED)

    def runtime(self, catalog: Catalog | None = None) -> Runtime:
        return Runtime(self.settings, catalog or self.catalog(), self.options)

    def send(self, *requests: IngestRequest) -> None:
        with Producer(self.settings.kafka_bootstrap_servers) as producer:
            for r in requests:
                producer.send(self.settings.topic_requests, r, key=r.doc_key)

    def jobs(self) -> list[Job]:
        return self.ledger.list_jobs(JobFilter(), limit=1000).items

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError(f"condition not met within {timeout}s")

    def runs(self) -> dict[str, int]:
        return {
            k: int(v)
            for k, v in self.redis.hgetall(f"{self.settings.redis_prefix}scripted:runs").items()
        }

    def effects(self) -> dict[str, str]:
        return dict(self.redis.hgetall(f"{self.settings.redis_prefix}scripted:effects"))


@pytest.fixture
def env(services: Services, redis_prefix: str, local_ray: None) -> Iterator[Env]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=services.kafka_bootstrap, redis_url=services.redis_url,
        redis_prefix=redis_prefix, consumer_group=f"rt-{tag}", topic_partitions=3,
        topic_requests=f"test.{tag}.requests", topic_results=f"test.{tag}.results",
        topic_mapping=f"test.{tag}.mapping", topic_deadletter=f"test.{tag}.dlq",
    )  # fmt: skip
    KafkaClient.from_settings(settings).ensure_topics()
    client = redis.Redis.from_url(services.redis_url, decode_responses=True)
    ledger = open_ledger(settings)
    yield Env(settings, RuntimeOptions(name=f"rt-{tag}", reconcile_s=1.0), ledger, client)
    ledger.close()
    client.close()


def request(
    doc: str, *, priority: int = 5, pipeline: str = "auto", **script: object
) -> IngestRequest:
    return IngestRequest(
        tenant_id="t", doc_key=doc, source=DocumentSource(kind=SourceKind.TEXT, value=doc),
        pipeline=pipeline, priority=priority, metadata=script,
    )  # fmt: skip
