"""Every Redis key name ingest_ray uses, built in one place from the configured prefix.

The ledger's Lua scripts build the same ``job:``/``idem:``/``idx:``/``leases``/``outbox`` names
from the prefix they are given (they must, to reach keys that depend on what they read); the
layout below is the one they follow. Everything written from Python takes its names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest_ray.constants import REDIS_PREFIX


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one prefix (``ir:`` by default; tests use their own)."""

    prefix: str = REDIS_PREFIX

    # --- the ledger ---------------------------------------------------------------------------

    def job(self, job_id: str) -> str:
        """Hash of a job's fields (``out:{stage}`` holds a stage's output)."""
        return f"{self.prefix}job:{job_id}"

    def history(self, job_id: str) -> str:
        """List of a job's events 1..n, kept once it has more events than its stream keeps."""
        return f"{self.job(job_id)}:history"

    def events(self, job_id: str) -> str:
        """Capped stream of a job's events (ids ``seq-0``)."""
        return f"{self.job(job_id)}:events"

    def index(self, name: str) -> str:
        """A sorted set of job ids (``all``, ``status:queued``, ``tenant:T``, ...)."""
        return f"{self.prefix}idx:{name}"

    def queued_group(self, tenant_id: str, priority: int) -> str:
        """Sorted set of the queued jobs of one (tenant, priority), oldest first: the fair
        backlog index the Dispatcher pulls from (maintained by the create/transition scripts)."""
        return f"{self.prefix}idx:fair:{tenant_id}|{priority}"

    @property
    def queued_groups(self) -> str:
        """Set of the ``tenant|priority`` groups that have queued jobs."""
        return f"{self.prefix}idx:fair-groups"

    @property
    def leases(self) -> str:
        """Processing jobs scored by lease expiry (epoch ms)."""
        return f"{self.prefix}leases"

    @property
    def outbox(self) -> str:
        """Stream of messages to publish (written by the transition script)."""
        return f"{self.prefix}outbox"

    @property
    def outbox_parked(self) -> str:
        """Stream of outbox messages the broker refused for good, kept for people to read."""
        return f"{self.prefix}outbox:parked"

    # --- the runtime --------------------------------------------------------------------------

    def inbox(self, runtime: str) -> str:
        """Stream of control commands (cancel, requeue) for one runtime's Dispatcher."""
        return f"{self.prefix}dispatch:{runtime}:inbox"

    def members(self, runtime: str) -> str:
        """Hash of the worker processes that use one runtime (name -> joined at)."""
        return f"{self.prefix}dispatch:{runtime}:members"

    def admission(self, runtime: str) -> str:
        """JSON snapshot of one runtime's admission: tenants' shares, in flight, quota use and
        waits, and the sources jobs wait for (published by its Dispatcher every second)."""
        return f"{self.prefix}dispatch:{runtime}:admission"

    @property
    def workers(self) -> str:
        """Hash of worker name -> last heartbeat (JSON)."""
        return f"{self.prefix}workers"

    def applied(self, scope: str, event_id: str) -> str:
        """Marks a consumed event as applied (``scope`` names the consumer)."""
        return f"{self.prefix}applied:{scope}:{event_id}"

    # --- sources and the API ------------------------------------------------------------------

    def source_rate(self, source: str) -> str:
        """Token bucket of an outside source (OpenAlex, Unpaywall, CORE, a host)."""
        return f"{self.prefix}ratelimit:{source}"

    def api_rate(self, tenant_id: str) -> str:
        """Token bucket of one tenant's API calls."""
        return f"{self.prefix}api:rate:{tenant_id}"

    @property
    def tenant_limits(self) -> str:
        """Hash of tenant -> its scheduling limits (JSON), set by ``ingest-ray tenant set``."""
        return f"{self.prefix}tenants:limits"

    def apikey(self, key_id: str) -> str:
        """Hash of one API key record."""
        return f"{self.prefix}apikey:{key_id}"

    def apikey_by_hash(self, digest: str) -> str:
        """Key id of an API key, by the sha256 of the secret."""
        return f"{self.prefix}apikey:by-hash:{digest}"

    @property
    def apikeys(self) -> str:
        """Set of every API key id."""
        return f"{self.prefix}apikeys"
