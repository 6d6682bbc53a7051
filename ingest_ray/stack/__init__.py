"""The local stack launcher: Kafka (KRaft) and Redis on loopback, without Docker."""

from __future__ import annotations

from ingest_ray.stack.launcher import LocalStack, ServiceStatus

__all__ = ["LocalStack", "ServiceStatus"]
