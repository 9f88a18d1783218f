#!/usr/bin/env bash
# Makes sure `redis-server` (7.x) is on PATH: installs it with apt-get when we are root,
# otherwise says exactly what to install. Used by `make run` and `make test`.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing it with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
  exit 0
fi
cat >&2 <<'MSG'
redis-server (Redis 7) is required but was not found on PATH.
Install it, then run make again:
  Debian/Ubuntu:  sudo apt-get install -y redis-server
  Fedora:         sudo dnf install -y redis
  macOS:          brew install redis
MSG
exit 1
