#!/usr/bin/env bash
# Renders a run's report.html in headless Chromium and writes a full-page PNG, to check the page as a
# user's browser draws it (charts, legends, tables). Installs chromium with apt when it is missing.
#   tools/report-screenshot.sh runs/quickstart [OUT.png]   (default RUN/report.png)
set -euo pipefail
run="${1:?usage: tools/report-screenshot.sh RUN_DIR [OUT.png]}"
out="${2:-$run/report.png}"
test -f "$run/report.html" || { echo "no $run/report.html (run: ballast report $run)" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,2700 \
  --screenshot="$out" "file://$(cd "$(dirname "$run/report.html")" && pwd)/report.html" 2>/dev/null
echo "wrote $out"
