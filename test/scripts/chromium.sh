#!/usr/bin/env bash
# chromium.sh installs Debian's Chromium for the web console's browser tests
# (test/e2e/console_test.go drives it headless with chromedp). Idempotent:
# nothing happens when chromium is already on the PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "chromium: installing the Debian package" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
