#!/usr/bin/env bash
# End-to-end throughput of distributed PPO on this host: rollouts/s and the learner's busy fraction
# for 1 and 2 actors (`ballast launch local`), against the single-process `ballast ppo` on the same
# config. Models are randomly initialised `small` GPT-2s (throughput does not depend on training).
#   tools/bench/distributed.sh [STEPS] [BATCH]        (ACTORS="1 2 4" for other actor counts, BALLAST_BIN for another binary,
#                                                     LAUNCH_FLAGS="--learner-threads 2 --actor-threads 1" to override thread shares)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${1:-8}; BATCH=${2:-32}
BIN=${BALLAST_BIN:-.build/release/ballast}
W=${BENCH_DIR:-/tmp/ballast-bench-distributed}
rm -rf "$W"; mkdir -p "$W"
$BIN init --preset small --n-positions 128 --out "$W/policy" > /dev/null
$BIN init --preset small --n-positions 128 --head score --head expected_reward_head --seed 2 --out "$W/am" > /dev/null
$BIN init --preset small --n-positions 128 --head score --seed 3 --out "$W/rm" > /dev/null
$BIN data generate --out "$W/data" --rl-prompts 512 --sft-train 10 --sft-test 10 --test-prompts 10 --forget 10 --pref-prompts 10 --pref-test-prompts 10 > /dev/null
cat > "$W/ppo.yaml" <<YAML
models: {policy: $W/policy, critic: $W/rm, scorer: $W/am}
data: {prompts: $W/data/rl_prompts.jsonl}
sampling: {max_new_tokens: 32}
ppo: {minibatch: 16, rehearsal_coef: 0}
train: {steps: $STEPS, batch_size: $BATCH}
run: {out_dir: $W/run, checkpoint_every: 1000, log_every: 1000}
cluster: {coordinator: "tcp://127.0.0.1:5655", rollouts: "tcp://127.0.0.1:5656", weights: "tcp://127.0.0.1:5657", notices: "tcp://127.0.0.1:5658", http: none, lease_size: 8, max_policy_lag: 2}
YAML
rollouts=$((STEPS * BATCH))
t0=$(date +%s.%N)
$BIN ppo --config "$W/ppo.yaml" --set run.threads=2 --set run.out_dir="$W/single" > "$W/single.log" 2>&1
t1=$(date +%s.%N)
printf "%-28s %8s %12s %14s %9s %9s\n" "mode" "wall s" "rollouts/s" "learner busy" "dropped" "sampled"
printf "%-28s %8.1f %12.1f %14s %9s %9s\n" "single process (2 threads)" "$(echo "$t1 - $t0" | bc)" "$(echo "$rollouts / ($t1 - $t0)" | bc -l)" "-" "-" "$rollouts"
for actors in ${ACTORS:-1 2}; do
  rm -rf "$W/run"
  t0=$(date +%s.%N)
  $BIN launch local --actors $actors ${LAUNCH_FLAGS:-} --config "$W/ppo.yaml" > "$W/launch-$actors.log" 2>&1
  t1=$(date +%s.%N)
  busy=$(grep -Eo "busy [0-9.]+" "$W/launch-$actors.log" | tail -1 | awk '{print $2}')
  dropped=$(grep -Eo "[0-9]+ stale rollout messages dropped" "$W/launch-$actors.log" | tail -1 | awk '{print $1}')
  # rollouts the actors sampled in all (each logs its count at the end), against the STEPS × BATCH trained
  sampled=$(grep -Eo "[0-9]+ rollouts sent" "$W/launch-$actors.log" | awk '{s += $1} END {print s + 0}')
  printf "%-28s %8.1f %12.1f %14s %9s %9s\n" "launch local, $actors actor(s)" "$(echo "$t1 - $t0" | bc)" "$(echo "$rollouts / ($t1 - $t0)" | bc -l)" "$busy" "$dropped" "$sampled"
done
echo "($STEPS PPO steps × $BATCH prompts = $rollouts rollouts trained, small model, 32 new tokens; wall includes process start-up and model transfer;"
echo " dropped = stale rollout messages the learner dropped, sampled = rollouts the actors generated; logs in $W)"
