"""Knobs of one runtime: actor names, queue tuning, ingress batching, supervision. Picklable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeOptions:
    """How the runtime's actors are named and tuned."""

    namespace: str = "ingest-ray"
    #: prefix of every actor name (so two runtimes can share a Ray cluster in tests)
    name: str = "ingest-ray"
    aging_s: float = 30.0
    high_watermark: int = 20000
    low_watermark: int = 10000
    #: jobs queued in the ledger beyond what the Dispatcher holds: ingress pauses above the
    #: high mark and resumes below the low one (the Dispatcher pulls them in fair order)
    backlog_high_watermark: int = 200_000
    backlog_low_watermark: int = 100_000
    ingress_batch: int = 500
    ingress_poll_s: float = 0.2
    #: how often the Dispatcher compares itself with the ledger and repairs differences
    reconcile_s: float = 5.0
    inbox_poll_s: float = 0.1
    pool_idle_s: float = 60.0
    relay_batch: int = 500
    relay_idle_s: float = 0.02
    #: how often a worker checks that the control plane and its ingress actors are alive
    supervise_s: float = 1.0

    @property
    def dispatcher_name(self) -> str:
        """The named Dispatcher actor."""
        return f"{self.name}/dispatcher"

    @property
    def relay_name(self) -> str:
        """The named outbox relay actor."""
        return f"{self.name}/outbox-relay"

    def ingress_name(self, worker: str, index: int) -> str:
        """The named Kafka ingress actor ``index`` of one worker."""
        return f"{self.name}/ingress/{worker}/{index}"
