"""``python -m benchmarks.pdf ...``: the same as ``ingest-ray bench pdf ...``."""

from __future__ import annotations

import sys

from ingest_ray.commands.bench import bench_app


def main() -> None:
    """Forward the arguments to ``ingest-ray bench pdf``."""
    bench_app(["pdf", *sys.argv[1:]], prog_name="python -m benchmarks.pdf")


if __name__ == "__main__":
    main()
