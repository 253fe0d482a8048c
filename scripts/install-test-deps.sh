#!/usr/bin/env bash
# Installs the Debian packages the tests start throwaway instances of (redis-server, PostgreSQL) and the
# tools they call (curl, chromium for the browser tests), when missing. Needs root (or sudo) on a fresh
# machine; does nothing when all are there.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # the browser tests drive it through Playwright
[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)  # Chinese in screenshots
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The tests start their own throwaway instances: the packages' system-wide services are not started at install
# (policy-rc.d answers "not now" for the install only, and is removed after unless one was there before);
# nothing here stops or disables a service.
POLICY=/usr/sbin/policy-rc.d
if [ -e "$POLICY" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
