#!/usr/bin/env bash
# The main job on the built-in benchmark: install what is missing, build, then run the paper's method
# end to end (`ballast pipeline --config configs/quickstart.yaml`: benchmark data, SFT, preference
# labelling, reward model, Advantage Model, selective-rehearsal selection, PPO arms RM-PPO / AM-PPO /
# AM-PPO + rehearsal, evaluation; about 20 minutes on 2 cores) and write runs/quickstart/report.html.
# Rerunning continues where it stopped. Extra arguments go to `ballast pipeline` (e.g. --set ppo.train.steps=10).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product ballast
BIN=.build/release/ballast
test -x "$BIN"
"$BIN" pipeline --config configs/quickstart.yaml "$@"
"$BIN" report runs/quickstart
