"""Knobs of one runtime: actor names, queue tuning, ingress batching. Picklable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How the runtime's actors are named and tuned."""

    namespace: str = "ingest-ray"
    #: prefix of every actor name (so two runtimes can share a Ray cluster in tests)
    name: str = "ingest-ray"
    aging_s: float = 30.0
    high_watermark: int = 20000
    low_watermark: int = 10000
    ingress_batch: int = 500
    ingress_poll_s: float = 0.2
    sweep_s: float = 5.0
    inbox_poll_s: float = 0.1
    pool_idle_s: float = 60.0

    @property
    def dispatcher_name(self) -> str:
        """The named Dispatcher actor."""
        return f"{self.name}/dispatcher"

    @property
    def ledger_cache_name(self) -> str:
        """The named LedgerCache actor."""
        return f"{self.name}/ledger-cache"

    def inbox_key(self, redis_prefix: str) -> str:
        """Redis list where control commands (cancel, requeue) reach the Dispatcher."""
        return f"{redis_prefix}dispatch:{self.name}:inbox"
