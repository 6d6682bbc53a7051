"""Orchestration benchmark: ingest_ray vs Celery vs Dramatiq vs plain Ray actors.

    python -m benchmarks.orchestration --jobs 20000 --json benchmarks/results/orchestration.json

A thin runner: the same as ``ingest-ray bench orchestration``, which takes the same options.
"""

from __future__ import annotations

import sys

from ingest_ray.commands.bench import bench_app


def main() -> None:
    """Forward the arguments to ``ingest-ray bench orchestration``."""
    bench_app(["orchestration", *sys.argv[1:]], prog_name="python -m benchmarks.orchestration")


if __name__ == "__main__":
    main()
