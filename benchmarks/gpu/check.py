"""MinerU on a real GPU: the fixture PDFs directly through MinerU's entry point and through
ingest_ray's in-process parser, pages/s of each and GPU utilisation sampled with nvidia-smi.

    python -m benchmarks.gpu.check [--tier standard] [--pdfs DIR] [--json PATH]

(``benchmarks/gpu/run.sh`` installs ``mineru[full]`` first and calls this.) Before measuring it
checks, each with a bounded timeout, that there is a GPU, that MinerU's model weights for the
tier are on disk, and that MinerU's GPU runtime (torch) is installed; otherwise it exits with one
line on stderr: 2 no GPU, 3 no model weights, 4 GPU extras missing, 6 a measurement failed or
outlived ``--timeout``. Each measurement runs in a child process killed at its deadline.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PDFS = ROOT.parent / "shared" / "fixtures" / "pdfs"
EXIT_NO_GPU, EXIT_NO_WEIGHTS, EXIT_NO_EXTRAS, EXIT_MEASURE = 2, 3, 4, 6
INSTALL = "pip install 'mineru[full]==4.0.12'"


class CheckFailed(Exception):
    """A precondition or a measurement failed: exit ``code`` with ``reason`` as the one line."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def gpus(timeout_s: float = 10.0) -> list[str]:
    """The GPUs nvidia-smi lists (name, memory); :class:`CheckFailed` when there are none."""
    if shutil.which("nvidia-smi") is None:
        raise CheckFailed(EXIT_NO_GPU, "no GPU: nvidia-smi not found on PATH")
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        reason = f"no GPU: nvidia-smi did not answer in {timeout_s:g} s"
        raise CheckFailed(EXIT_NO_GPU, reason) from exc
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not names:
        reason = (done.stderr.strip().splitlines() or ["no device listed"])[-1]
        raise CheckFailed(EXIT_NO_GPU, f"no GPU: nvidia-smi: {reason}")
    return names


def missing_weights(tier: str, timeout_s: float = 120.0) -> list[str]:
    """MinerU's model repositories for ``tier`` that are not complete on disk (checked in a
    child process: MinerU reads its configuration on import)."""
    code = (
        "import json,sys\n"
        "from mineru.model.registry import model_repos_for_tier\n"
        "from mineru.model.download import verify_model_repo\n"
        "repos = model_repos_for_tier(sys.argv[1])\n"
        "print(json.dumps([f'{r.name} ({r.local_dir()})' for r in repos"
        " if not verify_model_repo(r).ready]))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, tier],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(EXIT_NO_WEIGHTS, "no model weights: the check timed out") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise CheckFailed(EXIT_NO_EXTRAS, f"MinerU is not usable here: {tail}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def preflight(tier: str) -> list[str]:
    """GPU, weights, extras - in that order; the GPUs found."""
    found = gpus()
    if importlib.util.find_spec("mineru") is None:
        raise CheckFailed(EXIT_NO_EXTRAS, f"MinerU is not installed: {INSTALL}")
    missing = missing_weights(tier)
    if missing:
        raise CheckFailed(
            EXIT_NO_WEIGHTS,
            f"no model weights for tier {tier}: missing {', '.join(missing)}; "
            f"run mineru-models-download --tier {tier}",
        )
    if importlib.util.find_spec("torch") is None:
        raise CheckFailed(EXIT_NO_EXTRAS, f"MinerU's GPU extras are missing: {INSTALL}")
    return found


class Sampler:
    """nvidia-smi's GPU utilisation every ``every_s`` seconds, in a thread."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(self.every_s):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5, check=False)
                values = [float(v) for v in out.stdout.split() if v.strip()]
            except (subprocess.TimeoutExpired, ValueError):
                continue
            if values:
                self.samples.append(sum(values) / len(values))

    def summary(self) -> dict[str, float]:
        """Mean and peak utilisation (percent) and the share of samples above 90 %."""
        if not self.samples:
            return {"gpu_util_mean": 0.0, "gpu_util_max": 0.0, "gpu_util_over_90": 0.0}
        over = sum(s >= 90 for s in self.samples) / len(self.samples)
        return {
            "gpu_util_mean": round(sum(self.samples) / len(self.samples), 1),
            "gpu_util_max": max(self.samples),
            "gpu_util_over_90": round(over, 3),
        }


def measure(way: str, tier: str, pdfs: list[Path], timeout_s: float) -> dict[str, Any]:
    """Run one way (``direct`` or ``ingest_ray``) in a child process, sampling the GPU."""
    command = [sys.executable, "-m", "benchmarks.gpu.measure", way, tier, *map(str, pdfs)]
    with Sampler() as sampler:
        try:
            done = subprocess.run(
                command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(EXIT_MEASURE, f"{way}: no answer within {timeout_s:g} s") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CheckFailed(EXIT_MEASURE, f"{way} failed: {tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["pages_per_s"] = round(result["pages"] / result["seconds"], 2)
    return {**result, **sampler.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", default="standard", choices=["basic", "standard", "advanced"])
    parser.add_argument("--pdfs", type=Path, default=DEFAULT_PDFS)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per measurement, seconds")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        found = preflight(args.tier)
        pdfs = sorted(p for p in args.pdfs.glob("*.pdf") if "encrypted" not in p.name)
        if not pdfs:
            raise CheckFailed(EXIT_MEASURE, f"no PDFs in {args.pdfs}")
        rows = [measure(way, args.tier, pdfs, args.timeout) for way in ("direct", "ingest_ray")]
    except CheckFailed as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return exc.code
    for row in rows:
        print(f"{row['way']:<10} {row['pages']:>4} pages {row['seconds']:>7.1f} s "
              f"{row['pages_per_s']:>6.2f} pages/s  GPU mean {row['gpu_util_mean']:>5.1f} % "
              f"max {row['gpu_util_max']:>5.1f} %")  # fmt: skip
    if args.json is not None:
        report = {"gpus": found, "tier": args.tier, "time": time.time(), "runs": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
