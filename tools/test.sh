#!/usr/bin/env bash
# Ballast's test suite (Swift only, no Python needed): installs the system libraries if missing,
# then runs every Swift test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install/deps.sh
swift build --build-tests
swift test "$@"
