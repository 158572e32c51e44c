#!/usr/bin/env bash
# The main job on the built-in data: install what is missing, build, fine-tune a small GPT-2 on the
# built-in SFT tasks (about 4 minutes on 2 cores), then show a few greedy completions.
# Extra arguments go to `ballast sft`, e.g. --set train.steps=300 or --resume.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product ballast
BIN=.build/release/ballast
test -x "$BIN"
"$BIN" sft --config configs/sft-quickstart.yaml "$@"
for p in "17+25=" "reverse ballast:" "upper swift:" "sort 93715:" "count a in banana:"; do
  "$BIN" generate --model runs/sft-quickstart/checkpoint --prompt "$p" --greedy --max-new-tokens 16
done
