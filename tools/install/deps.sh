#!/usr/bin/env bash
# Installs the system libraries Ballast links against (OpenBLAS, libzmq) when they are missing.
# Debian/Ubuntu; needs root (or sudo). Idempotent and quiet when everything is present.
set -euo pipefail
if pkg-config --exists openblas libzmq 2>/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing libopenblas-dev libzmq3-dev pkg-config ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev libzmq3-dev pkg-config >/dev/null
