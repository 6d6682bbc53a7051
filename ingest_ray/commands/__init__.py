"""Sub-commands of ``ingest-ray``, one module per group (registered in ``ingest_ray.cli``)."""

from __future__ import annotations
