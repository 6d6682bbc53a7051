"""Long-running processes that consume Kafka topics."""

from __future__ import annotations
