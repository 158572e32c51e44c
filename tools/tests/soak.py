"""Soak test (not CI): a local multi-process run for MINUTES with an actor SIGKILLed and replaced every
few minutes. Samples every process's resident memory every 30 s and checks at the end that memory
stayed flat after warm-up (last sample within 15% + 20 MB of the first post-warm-up sample) and that the
prompt accounting is exact (the learner trained on exactly as many rows as the coordinator counted).

  python3 tools/tests/soak.py --pipeline runs/pipeline-tiny [--minutes 30] [--kill-every 180] [--actors 2]

--pipeline is a finished pipeline run (e.g. `ballast pipeline --config configs/pipeline-tiny.yaml`)
whose SFT, RM, AM and selection outputs the PPO run uses."""
import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_distributed import BIN, BATCH, Run, write_config, metrics  # noqa: E402


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
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--kill-every", type=float, default=180)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=120, help="seconds before memory is expected to be flat")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ballast-soak-"))
    cfg = write_config(tmp / "soak.yaml", Path(a.pipeline).resolve(), tmp / "out", steps=10_000_000)
    run = Run(tmp, tmp / "soak.yaml", cfg)
    run.coordinator(); run.learner()
    actors = [f"actor-{i}" for i in range(a.actors)]
    for name in actors:
        run.actor(name)
    born = {name: time.time() for name in run.procs}  # each process is judged from its own warm-up on
    start, last_kill, samples, generation = time.time(), time.time(), [], 0
    warmup = a.warmup
    try:
        while time.time() - start < a.minutes * 60:
            time.sleep(30)
            for name, p in run.procs.items():
                if p.poll() is not None and name in ("coordinator", "learner"):
                    raise SystemExit(f"{name} died: {run.log(name)[-2000:]}")
            if time.time() - last_kill > a.kill_every:
                victim = random.choice(actors)
                run.procs[victim].send_signal(signal.SIGKILL)
                run.procs[victim].wait()
                generation += 1
                replacement = f"actor-r{generation}"
                actors[actors.index(victim)] = replacement
                run.actor(replacement)
                born[replacement] = time.time()
                last_kill = time.time()
                print(f"{(time.time() - start) / 60:5.1f} min: killed {victim}, started {replacement}", flush=True)
            sample = {n: round(rss_mb(p.pid), 1) for n, p in run.procs.items()
                      if p.poll() is None and rss_mb(p.pid) is not None}
            settled = {n: v for n, v in sample.items() if time.time() - born[n] >= warmup}
            st = run.status() or {}
            samples.append((time.time() - start, settled))
            print(f"{(time.time() - start) / 60:5.1f} min: RSS MB {sample}, completed {st.get('completed')}, "
                  f"learner step {st.get('learner', {}).get('step')}, expired actors {st.get('actors_expired')}", flush=True)
    finally:
        run.procs["learner"].send_signal(signal.SIGTERM)
        run.procs["learner"].wait(timeout=120)
        st = run.status()
        run.stop()
    trained = sum(m["rollouts"] for m in metrics(tmp / "out"))
    steps = len(metrics(tmp / "out"))
    ok = True
    after = [s for _, s in samples]
    for name in sorted({n for s in after for n in s}):
        seen = [s[name] for s in after if name in s]
        if len(seen) >= 2:
            first, last = seen[0], seen[-1]
            flat = last <= first * 1.15 + 20
            ok &= flat
            print(f"{name}: RSS {first:.0f} MB after warm-up → {last:.0f} MB at the end: {'flat' if flat else 'GROWING'}")
    # Every prompt the coordinator counted was trained on exactly once. (A step can hold fewer than
    # batch_size rows when a re-leased prompt arrived twice in one batch: it counts, and trains, once.)
    exact = st is not None and st["completed"] == trained
    ok &= exact
    short = sum(1 for m in metrics(tmp / "out") if m["rollouts"] < BATCH)
    print(f"accounting: coordinator counted {st and st['completed']}, learner trained {trained} rows in {steps} steps "
          f"({short} with fewer than {BATCH}): {'exact' if exact else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
