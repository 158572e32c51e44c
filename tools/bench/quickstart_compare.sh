#!/usr/bin/env bash
# The quickstart's wall time, this checkout against an older commit, same day, same machine, same config:
#   tools/bench/quickstart_compare.sh [OLD_COMMIT] [CONFIG]
# OLD_COMMIT defaults to 7c57d42 (the last commit before issue 12's speed work); CONFIG to that commit's
# configs/quickstart.yaml, so both binaries run exactly the same stages (a config from a newer commit may
# use keys the old binary does not know). Each side runs `launch local` as tools/quickstart.sh does, one
# after the other on a quiet machine (about 50 minutes in all), and the script prints each stage's
# seconds from the launcher's "[stage] done in" lines, the totals, peak RSS and the speed-up. The two
# runs are sequential: on a machine whose speed drifts, run it twice (or alternate one stage with
# `ballast pipeline ... --until sft`) before trusting the ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD=${1:-7c57d42}
WORK=${BALLAST_COMPARE_DIR:-/tmp/ballast-quickstart-compare}
mkdir -p "$WORK"
if [ ! -d "$WORK/old" ]; then git worktree add -f "$WORK/old" "$OLD" >/dev/null; fi
git -C "$WORK/old" checkout -q "$OLD"
CONFIG=${2:-$WORK/old/configs/quickstart.yaml}
tools/install/deps.sh >/dev/null
if [ ! -x /usr/bin/time ]; then  # GNU time reports the peak RSS
    SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq time >/dev/null
fi
(cd "$WORK/old" && swift build -c release --product ballast --scratch-path "$WORK/build-old" 2>&1 | tail -1)
swift build -c release --product ballast 2>&1 | tail -1
declare -A BIN=([old]="$WORK/build-old/release/ballast" [new]=".build/release/ballast")
for side in old new; do
    rm -rf "$WORK/run-$side"
    start=$(date +%s)
    /usr/bin/time -f "peak RSS %M KiB" "${BIN[$side]}" launch local --actors 1 --learner-threads 2 --actor-threads 1 \
        --config "$CONFIG" --set run_dir="$WORK/run-$side" >"$WORK/$side.log" 2>&1
    echo "total $(( $(date +%s) - start ))" >>"$WORK/$side.log"
done
python3 - "$WORK" "$OLD" <<'EOF'
import re, sys
work, old = sys.argv[1], sys.argv[2]
def stages(side):
    text = open(f"{work}/{side}.log").read()
    def seconds(d):  # the launcher's durations: 42s, 3m07s, 1h2m
        h, m, s = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", d).groups()
        return 3600 * int(h or 0) + 60 * int(m or 0) + int(s or 0)
    done = {m[0]: seconds(m[1]) for m in re.findall(r"^\[([\w-]+)\] done in (\S+)", text, re.M)}
    total = float(re.search(r"^total (\d+)", text, re.M)[1])
    rss = int(re.search(r"peak RSS (\d+) KiB", text)[1]) / 1024
    return done, total, rss
(o, ot, orss), (n, nt, nrss) = stages("old"), stages("new")
print(f"{'stage':<14}{'old ' + old + ' s':>18}{'new s':>10}{'speed-up':>10}")
for k in o:
    if k in n and n[k] > 0:
        print(f"{k:<14}{o[k]:>18.0f}{n[k]:>10.0f}{o[k] / n[k]:>9.2f}x")
print(f"{'total':<14}{ot:>18.0f}{nt:>10.0f}{ot / nt:>9.2f}x")
print(f"peak RSS of the launcher's largest process: old {orss:.0f} MiB, new {nrss:.0f} MiB")
EOF
