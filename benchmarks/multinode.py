"""The long form of the multi-node test: more documents through the same four-raylet cluster,
the same node losses, and a JSON summary of both runs.

    python -m benchmarks.multinode --json benchmarks/results/multinode.json

It runs ``tests/integration/cluster`` with ``MULTINODE_FORM=long`` (every fixture PDF, 60 text
documents, 320 scripted jobs for run 1; 120 scripted jobs for run 2) and
``MULTINODE_REPORT=<json>``: per run the job counts by status and pipeline, how many jobs lost a
try to the node loss, which node was killed and when, when every job was terminal, and the
actors by pool and node. CI runs the short form (``pytest tests/integration/cluster``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the long form; exit with pytest's status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multinode", description=__doc__)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/multinode.json")
    args = parser.parse_args()
    target = args.json.resolve()
    target.unlink(missing_ok=True)
    env = {**os.environ, "MULTINODE_FORM": "long", "MULTINODE_REPORT": str(target)}
    command = [sys.executable, "-m", "pytest", "tests/integration/cluster", "-q",
               "-p", "no:cacheprovider"]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, check=False)
    if target.exists():
        print(target.read_text())
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
