#!/usr/bin/env bash
# Usage: scripts/ensure-command.sh COMMAND DEBIAN_PACKAGE
# Makes sure COMMAND is on PATH: installs DEBIAN_PACKAGE with apt-get when we are root,
# otherwise says exactly what to install. Used by `make run` and `make test` for
# redis-server (the tests' and the dev stack's Redis) and systemd-analyze (the edge
# worker's unit).
set -euo pipefail
command=${1:?usage: scripts/ensure-command.sh COMMAND DEBIAN_PACKAGE}
package=${2:?usage: scripts/ensure-command.sh COMMAND DEBIAN_PACKAGE}
if command -v "$command" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "$command not found: installing $package with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package"
  exit 0
fi
cat >&2 <<MSG
$command is required but was not found on PATH. Install it, then run make again:
  Debian/Ubuntu:  sudo apt-get install -y $package
  elsewhere:      your system's package of $package (Fedora: dnf, macOS: brew)
MSG
exit 1
