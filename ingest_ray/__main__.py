"""``python -m ingest_ray`` runs the CLI."""

from __future__ import annotations

from ingest_ray.cli import main

main()
