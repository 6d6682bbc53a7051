"""Side-by-side benchmarks of ingest_ray, kept out of the engine package.

They ship with the source checkout only (the wheel of ``ingest-ray`` does not contain them); the
``ingest-ray bench ...`` commands import them from the checkout an editable install points at.
Subprocesses and Ray workers started by a benchmark import its modules too (stage factories,
peer workers), so :func:`export_path` puts the checkout on ``PYTHONPATH`` before they start.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the source checkout that holds this package
ROOT = Path(__file__).resolve().parents[1]


def export_path() -> None:
    """Make ``benchmarks`` importable in every child process (Celery/Dramatiq workers, Ray's
    raylet and workers inherit the environment of the process that starts them)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *parts])
