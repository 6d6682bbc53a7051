"""Settings, in one place (pydantic-settings).

Every value can come from the environment with the ``INGEST_RAY_`` prefix; the two most common
also answer to their conventional names (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``). Settings are
plain pydantic models, so they pickle into Ray actors; nothing connects at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_cache_path, user_state_path
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_ray.constants import TOPIC_DEADLETTER, TOPIC_MAPPING, TOPIC_REQUESTS, TOPIC_RESULTS
from ingest_ray.tenants import TenantLimits

#: The Apache Kafka release the local stack runs (jars resolved from Maven Central).
KAFKA_VERSION = "4.1.1"


def _default_state_dir() -> Path:
    return user_state_path("ingest-ray")


def _default_cache_dir() -> Path:
    return user_cache_path("ingest-ray")


class Settings(BaseSettings):
    """Runtime settings for every ingest_ray process."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_RAY_", extra="ignore", frozen=True, populate_by_name=True
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices(
            "INGEST_RAY_KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_BOOTSTRAP_SERVERS",
            "kafka_bootstrap_servers",
        ),
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("INGEST_RAY_REDIS_URL", "REDIS_URL", "redis_url"),
    )
    topic_requests: str = TOPIC_REQUESTS
    topic_results: str = TOPIC_RESULTS
    topic_mapping: str = TOPIC_MAPPING
    topic_deadletter: str = TOPIC_DEADLETTER
    topic_partitions: int = Field(default=6, ge=1)
    #: the largest message the topics take (the producer's ``message.max.bytes``); a dead
    #: letter of a larger original keeps only its first part
    kafka_max_message_bytes: int = Field(default=1_000_000, ge=10_000)
    #: how soon the group hands a dead consumer's partitions to the others
    kafka_session_timeout_ms: int = Field(default=10_000, ge=6_000)
    #: the local stack's Redis durability: ``everysec`` or ``always`` (see docs/reliability.md)
    redis_appendfsync: str = Field(default="everysec", pattern="^(everysec|always)$")
    topic_replication: int = Field(default=1, ge=1)
    consumer_group: str = "ingest-ray"
    redis_prefix: str = "ir:"
    event_stream_maxlen: int = Field(default=1000, ge=10)
    #: where the job ledger lives: Redis (Lua compare-and-set, fastest) or PostgreSQL
    #: (transactions fsynced at commit, history queryable in SQL); see docs/architecture.md
    ledger_backend: Literal["redis", "postgres"] = "redis"
    #: libpq connection string; the same variable (``INGEST_RAY_POSTGRES_DSN``) as the
    #: pgvector index, so one PostgreSQL can hold both
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    #: the PostgreSQL schema of the ledger's tables (one database can hold several ledgers)
    postgres_ledger_schema: str = Field(default="ingest_ray", pattern=r"^[a-z_][a-z0-9_]{0,47}$")
    postgres_pool_max: int = Field(default=8, ge=1)
    postgres_connect_timeout_s: float = Field(default=5.0, gt=0)
    #: every ledger statement is cancelled after this long (a call never hangs)
    postgres_statement_timeout_s: float = Field(default=30.0, gt=0)
    #: apply pending schema migrations on first use; when False the ledger refuses to start
    #: on an old schema and asks for ``ingest-ray ledger migrate``
    postgres_auto_migrate: bool = True
    #: retention of finished jobs (``ingest-ray ledger prune``): age in days for every
    #: tenant (None keeps them forever), and per-tenant ages that override it
    ledger_retention_days: float | None = Field(default=None, gt=0)
    ledger_retention_days_by_tenant: dict[str, float] = Field(default_factory=dict)
    state_dir: Path = Field(default_factory=_default_state_dir)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka_version: str = KAFKA_VERSION
    health_timeout_s: float = Field(default=5.0, gt=0)
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INGEST_RAY_RAY_ADDRESS", "RAY_ADDRESS", "ray_address"),
    )
    #: logical CPUs of a local Ray (stage actors of I/O-bound stages ask for fractions of one)
    ray_local_num_cpus: int = Field(default=8, ge=1)
    #: a local Ray serves its dashboard on ``ray_dashboard_host`` (loopback by default); the
    #: port is Ray's 8265, or the next free one, unless ``ray_dashboard_port`` pins it
    ray_dashboard: bool = True
    ray_dashboard_host: str = "127.0.0.1"
    ray_dashboard_port: int | None = Field(default=None, ge=1, le=65535)
    #: seconds the Ray processes of a local session get to exit after ``ray.shutdown`` before
    #: the ones still running are ended by pid
    ray_stop_grace_s: float = Field(default=5.0, ge=0)
    #: names the runtime's actors and control inbox (two runtimes may share a Ray cluster)
    runtime_name: str = "ingest-ray"
    #: Prometheus ``/metrics`` port of each worker; 0 picks a free one, -1 serves none
    metrics_port: int = Field(default=9464, ge=-1)
    worker_heartbeat_s: float = Field(default=2.0, gt=0)
    drain_grace_s: float = Field(default=30.0, ge=0)
    #: MinerU pool: GPUs per actor, or a custom Ray resource name (e.g. ``mineru``) to ask for
    mineru_num_gpus: float = Field(default=0.0, ge=0)
    mineru_resource: str | None = None
    mineru_pool_max: int = Field(default=1, ge=1)
    #: CPU priority (``nice``, 0-19) of the work after the parser (the chunk, embed, index and
    #: mapping pools, and a mapping worker's thread): where it shares a node's cores with the
    #: parser and the stages that feed it, those go first and the accelerator waits less; where
    #: the cores are free it changes nothing. 0 turns it off
    downstream_nice: int = Field(default=10, ge=0, le=19)
    #: a custom Ray resource that keeps the long-lived actors (Dispatcher, outbox relay, Kafka
    #: ingress) on the nodes that carry it, e.g. the head: ``ray start --head
    #: --resources='{"ingest_control": 1}'``; each asks for 0.001 of it. None: any node
    control_resource: str | None = None
    #: one mineru call parses a batch (up to the pool's batch_size documents), so this bounds
    #: the batch, not one document
    mineru_timeout_s: float = Field(default=1800.0, gt=0)
    #: per-area overrides passed to the stages' own settings, e.g.
    #: ``{"storage": {"blob_url": "s3://bkt/blobs"}, "index": {"index_uri": "postgresql://h/db"}}``;
    #: areas: adapters, fetch, parse, text, index, storage. They travel with the settings into
    #: every Ray actor (environment variables are read where each stage runs)
    sections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: ``module:function`` called with the Catalog at start-up to register your own stages
    plugins: list[str] = Field(default_factory=list)
    #: scheduling limits of tenants without limits of their own (``ingest-ray tenant set``
    #: stores those in Redis), e.g. ``{"weight": 1, "max_in_flight": 500}``
    tenant_default: TenantLimits = Field(default_factory=TenantLimits)
    #: limits of named tenants, e.g. ``{"acme": {"weight": 3, "jobs_per_hour": 10000}}``;
    #: a tenant's record in Redis overrides these
    tenant_limits: dict[str, TenantLimits] = Field(default_factory=dict)

    @property
    def topics(self) -> tuple[str, str, str, str]:
        """Requests, results, mapping and dead-letter topic names, in that order."""
        return (self.topic_requests, self.topic_results, self.topic_mapping, self.topic_deadletter)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings read from the environment (cached; pass explicit ones in tests)."""
    return Settings()
