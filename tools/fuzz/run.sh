#!/usr/bin/env bash
# Fuzz the wire decoder with libFuzzer for a bounded time (default 60 s), starting from a corpus of
# valid frames written by `ballast wire sample`.  tools/fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-60}
CORPUS=${FUZZ_CORPUS:-/tmp/ballast-fuzz-corpus}
mkdir -p "$CORPUS"
if [ -x .build/release/ballast ]; then .build/release/ballast wire sample --out "$CORPUS/sample-rollout.bin" > /dev/null; fi
cd tools/fuzz
swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
exec .build/release/FuzzWire -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 "$CORPUS"
