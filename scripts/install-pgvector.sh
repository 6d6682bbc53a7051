#!/usr/bin/env bash
# PostgreSQL + the pgvector extension, for the PostgreSQL ledger, the pgvector index sink and
# their tests. Run by scripts/bootstrap.sh (so by `make test`, `make demo` and CI alike).
# Idempotent and quick when both are there: it checks two files and exits.
# PostgreSQL comes from the distribution (Debian bookworm: 15) when no server is installed.
# Debian bookworm has no pgvector package, so pgvector 0.8.0 is built from Debian's own source
# package (trixie) against the newest installed server. Needs apt-get and root (or sudo).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

newest_pg() {  # the newest /usr/lib/postgresql/N with a server binary, or nothing
  ls -1d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sed -E 's#.*/postgresql/([0-9]+)/bin/postgres#\1#' \
    | sort -n | tail -n 1
}

ver=$(newest_pg || true)
if [ -n "$ver" ] && [ -f "/usr/share/postgresql/$ver/extension/vector.control" ]; then
  echo "pgvector: PostgreSQL $ver with pgvector already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "pgvector: please install PostgreSQL and pgvector (macOS: brew install postgresql pgvector);" \
       "the PostgreSQL tests are skipped without them (and fail under CI=true)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ -z "$ver" ]; then
  echo "pgvector: installing PostgreSQL"
  $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  ver=$(newest_pg || true)
fi
echo "pgvector: building pgvector for PostgreSQL $ver"
$SUDO apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$ver" build-essential >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
echo "deb-src http://deb.debian.org/debian trixie main" > "$work/sources.list"
opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists")
$SUDO apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" source --download-only pgvector >/dev/null)
tar xzf "$work"/pgvector_*.orig.tar.gz -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)
# OPTFLAGS="" avoids -march=native so the build runs on any x86-64 machine
make -s -C "$src" PG_CONFIG="/usr/lib/postgresql/$ver/bin/pg_config" OPTFLAGS=""
$SUDO make -s -C "$src" PG_CONFIG="/usr/lib/postgresql/$ver/bin/pg_config" install
echo "pgvector: installed for PostgreSQL $ver"
