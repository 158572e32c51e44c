#!/usr/bin/env bash
# Multi-node run over SSH from a host file.
#
#   cluster/launch-ssh.sh HOSTS CONFIG [ACTORS_PER_HOST]
#
# HOSTS lists one host per line (blank lines and #comments ignored): the first host runs the
# coordinator and the learner, every host (the first included) runs ACTORS_PER_HOST actors (default 1).
# Every host must have this repository at the same path with the release binary built
# (swift build -c release --product ballast) and the files CONFIG names (models, prompts). CONFIG's
# cluster: section must bind the learner and coordinator to an address the other hosts reach, e.g.
#   coordinator: tcp://0.0.0.0:5555   rollouts: tcp://0.0.0.0:5556   weights: tcp://0.0.0.0:5557
#   notices: tcp://0.0.0.0:5558       advertise_host: node1           curve_keys: keys/run1
# (make keys with `ballast keys --out keys/run1 --nodes HOST...`: keys/run1 goes to the first host only,
# keys/run1/nodes/HOST to each HOST at the same path, and each host's actors use that folder, so no
# host holds another's secret; without --nodes, copy keys/run1 to every host).
# Logs go to RUN_LOGS (default logs/HOST-ROLE.log); Ctrl-C stops every remote process (SIGTERM, the
# learner checkpoints). Exits non-zero if the learner fails.
set -euo pipefail
HOSTS=${1:?host file}; CONFIG=${2:?config}; PER_HOST=${3:-1}
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
BIN="$REPO/.build/release/ballast"
LOGS=${RUN_LOGS:-logs}
mkdir -p "$LOGS"
mapfile -t hosts < <(grep -v '^\s*#' "$HOSTS" | sed '/^\s*$/d')
[ "${#hosts[@]}" -ge 1 ] || { echo "no hosts in $HOSTS" >&2; exit 2; }
head_host=${hosts[0]}
coordinator_port=$(grep -Eo 'coordinator: *tcp://[^ ]+' "$CONFIG" | sed -E 's/.*:([0-9]+)$/\1/' || true)
coordinator="tcp://$head_host:${coordinator_port:-5555}"
curve=$(grep -Eo 'curve_keys: *[^ #]+' "$CONFIG" | awk '{print $2}' || true)

pids=()
remote() {  # remote HOST NAME COMMAND...
  local host=$1 name=$2; shift 2
  ssh -o BatchMode=yes "$host" "cd '$REPO' && exec $*" > "$LOGS/$host-$name.log" 2>&1 &
  pids+=($!)
  echo "started $name on $host (log $LOGS/$host-$name.log)"
}
cleanup() {
  echo "stopping remote processes"
  # Only this run's processes: its coordinator and learner by their --config, its actors by the coordinator
  # they report to (another run on the same hosts has another config and another coordinator endpoint).
  for h in "${hosts[@]}"; do
    ssh -o BatchMode=yes "$h" "pkill -TERM -f '$BIN (coordinator|learner) --config $CONFIG'; pkill -TERM -f '$BIN actor --coordinator $coordinator '" || true
  done
  wait || true
}
trap cleanup INT TERM

remote "$head_host" coordinator "$BIN" coordinator --config "$CONFIG"
remote "$head_host" learner "$BIN" learner --config "$CONFIG" ${RESUME:+--resume}
learner_pid=${pids[-1]}
for h in "${hosts[@]}"; do
  for i in $(seq 0 $((PER_HOST - 1))); do
    keys=$curve
    if [ -n "$curve" ] && [ -d "$curve/nodes/$h" ]; then keys="$curve/nodes/$h"; fi
    remote "$h" "actor-$i" "$BIN" actor --coordinator "$coordinator" --id "$h-actor-$i" ${keys:+--curve-keys "$keys"}
  done
done
echo "status: $BIN status $coordinator${curve:+ --curve-keys $curve}"
status=0
wait "$learner_pid" || status=$?
sleep 5   # actors learn from the coordinator that the run is finished
cleanup
exit $status
