#!/usr/bin/env bash
# Renders a run report in headless Chromium and saves a PNG, to check that it opens in a browser.
# Usage: tools/screenshot_report.sh RUN_DIR/report.html [OUT.png]   (installs chromium if missing)
set -euo pipefail
html="$(realpath "$1")"
out="${2:-${html%.html}.png}"
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2200 \
  --screenshot="$out" "file://$html" 2>/dev/null
test -s "$out"
echo "wrote $out"
