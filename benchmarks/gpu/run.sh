#!/usr/bin/env bash
# MinerU on a real GPU, through ingest_ray and directly: pages/s and GPU utilisation.
#
#   benchmarks/gpu/run.sh [--tier standard] [--pdfs DIR] [--json benchmarks/results/gpu.json]
#
# Installs the project and MinerU with its GPU extras (mineru[full]: torch + vLLM) into a
# virtualenv of its own ($VENV, default .venv-gpu), then runs benchmarks/gpu/check.py. Exits
# non-zero with one line on stderr, never hangs (every step has a timeout): 2 no GPU, 3 no model
# weights (run `mineru-models-download --tier standard` first), 4 GPU extras missing, 5 install
# failed, 6 a measurement failed or timed out. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "gpu-check: $2" >&2; exit "$1"; }

command -v nvidia-smi >/dev/null 2>&1 || fail 2 "no GPU: nvidia-smi not found on PATH"
timeout 20 nvidia-smi -L >/dev/null 2>&1 || fail 2 "no GPU: nvidia-smi lists no device"

VENV=${VENV:-.venv-gpu}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || timeout 300 "$PYTHON" -m venv "$VENV" || fail 5 "cannot create $VENV"
timeout "${GPU_INSTALL_TIMEOUT:-2400}" "$VENV/bin/python" -m pip install -q -e . "mineru[full]==4.0.12" \
  || fail 5 "installing the project and mineru[full]==4.0.12 failed or timed out"

exec timeout "${GPU_CHECK_TIMEOUT:-7200}" "$VENV/bin/python" -m benchmarks.gpu.check "$@"
