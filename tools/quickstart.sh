#!/usr/bin/env bash
# The main job on the built-in benchmark: install what is missing, build, then run the paper's method
# end to end as a local multi-process run (`ballast launch local --actors 2 --config
# configs/quickstart.yaml`: benchmark data, SFT, preference labelling, reward model, Advantage Model and
# selective-rehearsal selection in the launcher; then each PPO arm — RM-PPO, AM-PPO, AM-PPO + rehearsal —
# as a coordinator, a learner and 2 actor processes over ZeroMQ; evaluation) and write
# runs/quickstart/report.html. Rerunning continues where it stopped. Extra arguments go to
# `ballast launch local` (e.g. --set ppo.train.steps=10, --actors 3).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product ballast
BIN=.build/release/ballast
test -x "$BIN"
"$BIN" launch local --actors 2 --config configs/quickstart.yaml "$@"
"$BIN" report runs/quickstart
