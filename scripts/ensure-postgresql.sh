#!/usr/bin/env bash
# Usage: scripts/ensure-postgresql.sh
# Makes sure PostgreSQL's server binaries (initdb, postgres) are here, on PATH or where
# Debian puts them (/usr/lib/postgresql/<version>/bin): `make run` and `make test` start a
# private cluster of their own with them. Installs Debian's postgresql package with apt-get
# when we are root, otherwise says what to install.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL not found: installing postgresql with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
  exit 0
fi
cat >&2 <<'MSG'
PostgreSQL's server (initdb, postgres) is required but was not found. Install it, then run
make again:
  Debian/Ubuntu:  sudo apt-get install -y postgresql
  elsewhere:      your system's PostgreSQL server package (Fedora: postgresql-server,
                  macOS: brew install postgresql), with initdb on PATH
MSG
exit 1
