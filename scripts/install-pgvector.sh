#!/usr/bin/env bash
# PostgreSQL 15 + the pgvector extension, for the server-backed index sink and its tests.
# Debian bookworm ships PostgreSQL 15 but no pgvector package, so pgvector 0.8.0 is built from
# Debian's own source package (trixie) against PG 15. Idempotent; needs root (or sudo).
set -euo pipefail
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ -f /usr/share/postgresql/15/extension/vector.control ]; then
  echo "pgvector: already installed"
  exit 0
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  postgresql postgresql-server-dev-15 build-essential >/dev/null
work=$(mktemp -d)
mkdir -p "$work/lists/partial"
echo "deb-src http://deb.debian.org/debian trixie main" > "$work/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists")
$SUDO apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" source --download-only pgvector >/dev/null)
tar xzf "$work"/pgvector_*.orig.tar.gz -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)
# OPTFLAGS="" avoids -march=native so the build runs on any x86-64 machine
make -s -C "$src" PG_CONFIG=$PG_CONFIG OPTFLAGS=""
$SUDO make -s -C "$src" PG_CONFIG=$PG_CONFIG install
rm -rf "$work"
echo "pgvector: installed"
