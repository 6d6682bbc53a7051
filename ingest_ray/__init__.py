"""ingest_ray: scholarly literature ingestion on Kafka, Redis and Ray."""

from __future__ import annotations

import logging

logging.getLogger("ingest_ray").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = ["__version__"]
