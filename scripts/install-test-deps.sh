#!/usr/bin/env bash
# Installs the Debian packages the tests start throwaway instances of (redis-server, PostgreSQL) and the
# tools they call (curl), when missing. Needs root (or sudo) on a fresh machine; does nothing when all are there.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package may start system-wide services; the tests start their own throwaway instances instead.
$SUDO systemctl disable --now redis-server postgresql >/dev/null 2>&1 || true
