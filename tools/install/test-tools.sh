#!/usr/bin/env bash
# Tools the test suites call besides Python: promtool (Debian's prometheus package) checks that /metrics
# is valid Prometheus exposition; chromium renders the report in test_report_renders_in_chromium (which
# is skipped without it). Idempotent; needs root (or sudo).
set -euo pipefail
if command -v promtool >/dev/null && command -v chromium >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing prometheus (for promtool) and chromium ..." >&2
$SUDO apt-get update -qq
# policy-rc.d 101: the package must not start a Prometheus server on the test machine.
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; REMOVE_POLICY=1; fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus chromium >/dev/null
if [ "${REMOVE_POLICY:-0}" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
command -v promtool >/dev/null && command -v chromium >/dev/null
