"""Multi-host run across network namespaces: coordinator, learner and two actors each in a namespace of
their own, joined by veth pairs on a bridge (10.213.0.0/24, made and removed by the test), so every
message crosses a real network interface. Mid-run one actor's link is cut; its leases are re-leased
and the run completes with every prompt counted and trained on once.

Needs root and `ip netns` (skipped otherwise). Run: python3 -m pytest -q tools/tests/test_netns.py
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_distributed import BATCH, BIN, ROOT, artifacts, metrics, write_config  # noqa: E402,F401

NET = "10.213.0"
NODES = {"coord": 10, "learner": 11, "actor0": 12, "actor1": 13}
STEPS = 60


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def netns_usable():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    steps = [("ip", "netns", "add", "blt-probe"), ("ip", "link", "add", "blt-probe-br", "type", "bridge"),
             ("ip", "link", "add", "blt-probe-a", "type", "veth", "peer", "name", "blt-probe-b"),
             ("ip", "link", "set", "blt-probe-b", "netns", "blt-probe")]
    ok = all(sh(*c, check=False).returncode == 0 for c in steps)
    for c in (("ip", "link", "del", "blt-probe-a"), ("ip", "link", "del", "blt-probe-br"), ("ip", "netns", "del", "blt-probe")):
        sh(*c, check=False)
    return ok


pytestmark = pytest.mark.skipif(not netns_usable(), reason="needs root and ip netns")


@pytest.fixture
def network():
    def teardown():
        for n in NODES:
            sh("ip", "link", "del", f"blt-h-{n}", check=False)
            sh("ip", "netns", "del", f"blt-{n}", check=False)
        sh("ip", "link", "del", "blt-br", check=False)

    teardown()
    sh("ip", "link", "add", "blt-br", "type", "bridge")
    sh("ip", "addr", "add", f"{NET}.1/24", "dev", "blt-br")
    sh("ip", "link", "set", "blt-br", "up")
    for n, host in NODES.items():
        ns, outer, inner = f"blt-{n}", f"blt-h-{n}", f"blt-n-{n}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "link", "set", outer, "master", "blt-br")
        sh("ip", "link", "set", outer, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{NET}.{host}/24", "dev", inner)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    yield
    teardown()


def rx_bytes(node):
    return int(Path(f"/sys/class/net/blt-h-{node}/statistics/rx_bytes").read_text())


def test_run_across_namespaces_survives_a_cut_link(tmp_path, artifacts, network):
    cfg = write_config(tmp_path / "ppo.yaml", artifacts, tmp_path / "out", steps=STEPS,
                       coordinator=f"tcp://{NET}.10:5555", rollouts=f"tcp://{NET}.11:5556", weights=f"tcp://{NET}.11:5557",
                       notices=f"tcp://{NET}.11:5558", http=f"{NET}.10:8080")
    procs, logs = {}, {}

    def start(node, *args):
        logs[node] = tmp_path / f"{node}.log"
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", BALLAST_THREADS="1")
        procs[node] = subprocess.Popen(["ip", "netns", "exec", f"blt-{node}", BIN, *args], cwd=ROOT, env=env,
                                       stdout=open(logs[node], "w"), stderr=subprocess.STDOUT)

    def status():
        r = subprocess.run([BIN, "status", cfg["cluster"]["coordinator"], "--json", "--timeout-ms", "2000"],
                           capture_output=True, text=True, timeout=30)  # from the root namespace, over the bridge
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_until(cond, what, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = status()
            if st and cond(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(f"--- {n}\n{p.read_text()[-1500:]}" for n, p in logs.items()))

    try:
        start("coord", "coordinator", "--config", str(tmp_path / "ppo.yaml"))
        start("learner", "learner", "--config", str(tmp_path / "ppo.yaml"))
        for a in ("actor0", "actor1"):
            start(a, "actor", "--coordinator", cfg["cluster"]["coordinator"], "--id", a, "--threads", "1")
        wait_until(lambda s: s["completed"] >= 2 * BATCH and {x["id"] for x in s["actors"]} == {"actor0", "actor1"}, "both actors working")
        sh("ip", "link", "set", "blt-h-actor1", "down")  # the cable is pulled
        wait_until(lambda s: s["actors_expired"] >= 1, "the cut-off actor to expire")
        assert procs["learner"].wait(timeout=240) == 0, logs["learner"].read_text()[-3000:]
        st = status()
        assert st["finished"] and st["completed"] == STEPS * BATCH
        m = metrics(tmp_path / "out")
        assert [x["step"] for x in m] == list(range(1, STEPS + 1))
        assert sum(x["rollouts"] for x in m) == STEPS * BATCH, "every prompt trained on exactly once"
        # Weights and rollouts really crossed the interfaces: the learner's link carried megabytes.
        assert rx_bytes("learner") > 1_000_000 and rx_bytes("actor0") > 100_000
        assert procs["actor0"].wait(timeout=30) == 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
