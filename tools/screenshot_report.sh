#!/usr/bin/env bash
# Renders a run's report.html in headless Chromium and writes a full-page PNG, to check the page as a
# user's browser draws it (charts, legends, tables). Installs chromium with apt when it is missing.
#   tools/screenshot_report.sh runs/quickstart [OUT.png]            (default RUN/report.png)
#   tools/screenshot_report.sh runs/quickstart/report.html [OUT.png]
set -euo pipefail
target="${1:?usage: tools/screenshot_report.sh RUN_DIR|REPORT.html [OUT.png]}"
[ -d "$target" ] && target="$target/report.html"
test -f "$target" || { echo "no $target (run: ballast report RUN_DIR)" >&2; exit 1; }
html="$(realpath "$target")"
out="${2:-${html%.html}.png}"
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,2700 \
  --screenshot="$out" "file://$html" 2>/dev/null
test -s "$out"
echo "wrote $out"
