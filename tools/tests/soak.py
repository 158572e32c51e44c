"""Soak test (not CI): a local multi-process run of STEPS PPO steps during which, every KILL_EVERY seconds
for MINUTES, a random process is SIGKILLed and started again: an actor (replaced by a new one), the
learner (resumed from its checkpoint) or the coordinator (replaying its journal). After the chaos the
run must complete, and then:
- the learner exits 0 with every step from 1 to STEPS in its metrics once;
- every prompt the coordinator counted was trained exactly once (the learner logs the prompt ids of each
  step; the multiset is checked), and the coordinator says finished with the whole budget counted;
- every process's resident memory stayed flat after its warm-up (last sample within 15% + 20 MB of its
  first post-warm-up sample).

  python3 tools/tests/soak.py --pipeline runs/pipeline-tiny [--minutes 30] [--kill-every 60] [--actors 2] [--steps N]

--pipeline is a finished pipeline run (e.g. `ballast pipeline --config configs/pipeline-tiny.yaml`)
whose SFT, RM, AM and selection outputs the PPO run uses. Exits non-zero on any failed check."""
import argparse
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_distributed import BATCH, Run, metrics, write_config  # noqa: E402


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--minutes", type=float, default=30, help="how long processes are killed")
    ap.add_argument("--kill-every", type=float, default=60)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--steps", type=int, help="PPO steps of the run (default 8 per second of chaos, which outlasts it on the tiny pipeline)")
    ap.add_argument("--warmup", type=float, default=120, help="seconds after a start before memory is expected to be flat")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    a.steps = a.steps or int(a.minutes * 60 * 8)
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="ballast-soak-"))
    out = tmp / "out"
    cfg = write_config(tmp / "soak.yaml", Path(a.pipeline).resolve(), out, steps=a.steps)
    run = Run(tmp, tmp / "soak.yaml", cfg)
    run.coordinator(); run.learner()
    actors = [f"actor-{i}" for i in range(a.actors)]
    for name in actors:
        run.actor(name)
    born = {name: time.time() for name in run.procs}  # each process is judged from its own warm-up on
    start, last_kill, generation = time.time(), time.time(), 0
    samples, kills = [], Counter()
    ok = True

    def elapsed():
        return f"{(time.time() - start) / 60:5.1f} min"

    try:
        while run.procs["learner"].poll() is None:
            time.sleep(min(10, a.kill_every / 3))
            chaos = time.time() - start < a.minutes * 60
            if not chaos and time.time() - start > a.minutes * 60 + 3600:
                raise SystemExit(f"the run did not complete within an hour after the chaos: {run.log('learner')[-2000:]}")
            if run.procs["coordinator"].poll() is not None:
                raise SystemExit(f"coordinator died unasked: {run.log('coordinator')[-2000:]}")
            if chaos and time.time() - last_kill > a.kill_every:
                victim = rng.choice(["coordinator", "learner"] + actors)
                run.procs[victim].send_signal(signal.SIGKILL)
                run.procs[victim].wait()
                kills[victim if victim in ("coordinator", "learner") else "actor"] += 1
                if victim == "coordinator":
                    run.coordinator()
                elif victim == "learner":
                    run.learner(resume=(out / "checkpoint" / "trainer_state.json").exists())
                else:
                    generation += 1
                    replacement = f"actor-r{generation}"
                    actors[actors.index(victim)] = replacement
                    victim = replacement
                    run.actor(replacement)
                born[victim] = time.time()
                last_kill = time.time()
                print(f"{elapsed()}: killed and restarted {victim}", flush=True)
            sample = {n: round(rss_mb(p.pid), 1) for n, p in run.procs.items() if p.poll() is None and rss_mb(p.pid) is not None}
            samples.append({n: v for n, v in sample.items() if time.time() - born[n] >= a.warmup})
            st = run.status() or {}
            print(f"{elapsed()}: RSS MB {sample}, completed {st.get('completed')}, learner step {st.get('learner', {}).get('step')}, "
                  f"rewound {st.get('prompts_rewound')}, reclaimed {st.get('prompts_reclaimed')}", flush=True)
        rc = run.procs["learner"].wait()
        st = run.status()
    finally:
        run.stop()
    print(f"kills: {dict(kills)}; learner exit {rc}")
    ok &= rc == 0
    m = [x for x in metrics(out) if "trained_prompts" in x]
    steps_ok = [x["step"] for x in m] == list(range(1, a.steps + 1))
    trained = Counter(tuple(p) for x in m for p in x["trained_prompts"])
    once = all(n == 1 for n in trained.values())
    counted = st is not None and st["finished"] and st["completed"] == sum(trained.values()) == a.steps * BATCH
    ok &= steps_ok and once and counted
    print(f"steps 1..{a.steps} once each: {steps_ok}; {sum(trained.values())} prompts trained, each once: {once}; "
          f"coordinator finished with {st and st['completed']} counted of {a.steps * BATCH}: {counted}")
    for name in sorted({n for s in samples for n in s}):
        seen = [s[name] for s in samples if name in s]
        if len(seen) >= 2:
            first, last = seen[0], seen[-1]
            flat = last <= first * 1.15 + 20
            ok &= flat
            print(f"{name}: RSS {first:.0f} MB after warm-up → {last:.0f} MB at the end: {'flat' if flat else 'GROWING'}")
    print("soak " + ("passed" if ok else "FAILED") + f" ({tmp})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
