#!/usr/bin/env bash
# Makes sure `systemd-analyze` is on PATH (it checks the edge worker's unit): installs
# Debian's systemd package with apt-get when we are root, otherwise says what to install.
set -euo pipefail
if command -v systemd-analyze >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "systemd-analyze not found: installing systemd with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends systemd
  exit 0
fi
cat >&2 <<'MSG'
systemd-analyze is required (to verify deployments/systemd) but was not found on PATH.
Install it, then run make again:
  Debian/Ubuntu:  sudo apt-get install -y systemd
  Fedora:         sudo dnf install -y systemd
MSG
exit 1
