#!/usr/bin/env bash
# The console's browser tests drive Debian's chromium (playwright-core downloads no browser).
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq chromium >/dev/null
[ -x /usr/bin/chromium ]
