#!/usr/bin/env bash
# The main job on the built-in benchmark: install what is missing, build, then run the paper's method
# end to end as a local multi-process run (`ballast launch local --config configs/quickstart.yaml`:
# benchmark data, SFT, preference labelling, reward model, Advantage Model and selective-rehearsal
# selection in the launcher; then each PPO arm — RM-PPO, AM-PPO, AM-PPO + rehearsal — as a coordinator,
# a learner and an actor process over ZeroMQ; evaluation) and write runs/quickstart/report.html.
# Rerunning continues where it stopped. Extra arguments go to `ballast launch local` (e.g.
# --set ppo.train.steps=10, --actors 3).
#
# One actor and a two-thread learner: on 2 cores the learner is the bottleneck (busy 98% of the time)
# and a second actor only generates rollouts that go stale. Measured on the quickstart's RM-PPO arm at
# 35 PPO steps (before the 45-step recipe and issue 12's speed-ups; at 45 steps an arm now takes 1 min 43 s
# to 1 min 48 s with 1 actor and a 2-thread learner):
# 3 min 38 s with 2 actors (1 thread each, learner 1 thread; 59% of the rollouts sent were dropped as
# stale), 2 min 58 s with 1 actor (1 thread each), 2 min 31 s with 1 actor and a 2-thread learner.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install/deps.sh
swift build -c release --product ballast
BIN=.build/release/ballast
test -x "$BIN"
"$BIN" launch local --actors 1 --learner-threads 2 --actor-threads 1 --config configs/quickstart.yaml "$@"
"$BIN" report runs/quickstart
