"""``python -m benchmarks.accel ...``: the same as ``ingest-ray bench accel ...``."""

from __future__ import annotations

import sys

from ingest_ray.commands.bench import bench_app


def main() -> None:
    """Forward the arguments to ``ingest-ray bench accel``."""
    bench_app(["accel", *sys.argv[1:]], prog_name="python -m benchmarks.accel")


if __name__ == "__main__":
    main()
