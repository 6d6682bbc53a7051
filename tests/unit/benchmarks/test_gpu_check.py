"""The GPU check's fail-fast path (it is not run in CI): without a GPU, or with a GPU but no
MinerU model weights, it exits non-zero at once with one line saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _check(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "MINERU_HOME": str(tmp_path / "mineru")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu.check", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_gpu_check_fails_fast_without_a_gpu(tmp_path: Path) -> None:
    done = _check(tmp_path, str(tmp_path / "empty-bin"))
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu-check: no GPU: nvidia-smi not found on PATH"
    assert done.stdout == ""


def test_gpu_check_fails_fast_when_nvidia_smi_finds_no_device(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'No devices were found' >&2\nexit 6\n")
    fake.chmod(0o755)
    done = _check(tmp_path, f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu-check: no GPU: nvidia-smi: No devices were found"


def test_gpu_check_fails_fast_without_model_weights(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"  # a GPU as nvidia-smi reports one
    fake.write_text("#!/bin/sh\necho 'NVIDIA A10G, 23028 MiB'\n")
    fake.chmod(0o755)
    done = _check(tmp_path, f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "--tier", "basic")
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gpu-check: no model weights for tier basic: missing ")
    assert line.endswith("run mineru-models-download --tier basic")
