"""Wire fuzzer (not CI): checksum-correct hostile frames against a live local run, for a bounded time.

    python3 tools/fuzz/cluster.py --pipeline runs/pipeline-tiny [--seconds 300] [--seed 1]

Starts a coordinator, a learner and an actor on the tiny pipeline's models (as the distributed tests
do) with CURVE on, then sends frames, as a peer holding an authorised actor key (the strongest attacker
short of the learner's own key), to the coordinator (DEALER), the learner's rollout socket (PUSH) and
its weights socket (DEALER). Each frame starts from a well-formed message of some kind (hello, ready, heartbeat,
consumption, weights request, status, rollout) and is mutated: metadata values replaced by extremes
(empty, negative, 2^63, 2^64, nan, inf, 1e308, NUL, 100 kB, non-ASCII, JSON fragments), keys dropped or
added, kind and policy version changed, tensor dtypes, shapes and offsets altered, bytes flipped, the
payload header length lied about — and then the envelope's length and both CRC-32C checksums are
recomputed, so every frame passes the checksum and reaches the decoders. Every few seconds the
processes must still be up; at the end the coordinator and the learner must have counted rejected
frames, and the run must still make progress. Exits non-zero on a failure, printing the logs."""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_distributed import BIN, Run, write_config  # noqa: E402
from wire_reader import crc32c  # noqa: E402

KINDS = {"hello": 1, "ready": 2, "lease": 3, "heartbeat": 4, "rollout": 5, "consumption": 6, "version_notice": 7,
         "weights_request": 8, "weights": 9, "status": 10, "error": 11}
EXTREMES = ["", "-1", "0", "1", "9223372036854775807", "9223372036854775808", "18446744073709551616", "-9223372036854775809",
            "nan", "inf", "-inf", "1e308", "-0", "0x10", "1.5", "\u0000", "A" * 100_000, "é\u0301🙂中", "{\"a\":", "[]", "null",
            "learner", "actor", "policy", "1" * 400]


def frame(kind, metadata=None, tensors=None, version=0, sequence=1, header_lie=None):
    """Envelope + payload (a safetensors file) with correct length and checksums."""
    payload = b""
    if metadata or tensors:
        header, data = {}, b""
        if metadata is not None:
            header["__metadata__"] = metadata
        for name, (dtype, shape, raw) in (tensors or {}).items():
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
            data += raw
        h = json.dumps(header, ensure_ascii=False).encode()
        n = len(h) if header_lie is None else header_lie
        payload = struct.pack("<Q", n) + h + data
    head = struct.pack("<4sHHQQQI", b"BLWF", 2, kind, sequence, version, len(payload), crc32c(payload))
    return head + struct.pack("<IQ", crc32c(head), 0), payload


def reseal(envelope, payload):
    """Recomputes length and checksums after a mutation."""
    magic, ver, kind, seq, pver = struct.unpack("<4sHHQQ", envelope[:24])
    head = struct.pack("<4sHHQQQI", magic, ver, kind, seq, pver, len(payload), crc32c(payload))
    return head + struct.pack("<IQ", crc32c(head), 0), payload


def i64(values):
    return struct.pack(f"<{len(values)}q", *values)


def seeds(rollout_sample):
    """Well-formed messages of every kind an attacker can send to a listener: (target, kind, metadata, tensors, version)."""
    endpoints = {"rollouts": "tcp://127.0.0.1:1", "weights": "tcp://127.0.0.1:2", "notices": "tcp://127.0.0.1:3"}
    learner = dict(role="learner", id="learner", step="3", queue="0", queue_capacity="8", dropped="0", downweighted="0", checkpoint="none",
                   busy="0.5", rollouts_per_s="1", errors="0", **{"run.temperature": "1", "run.max_new_tokens": "8", "run.responses_per_prompt": "1",
                   "run.lease_size": "4", "run.seed": "1", "run.heartbeat_interval": "1"}, **endpoints,
                   incarnation="fuzz", checkpoint_step="0", **{"flow.batch_prompts": "8", "flow.max_policy_lag": "1"})
    return [
        ("coordinator", "hello", dict(role="actor", id="fuzz", host="h"), None, 0),
        ("coordinator", "hello", learner, None, 3),
        ("coordinator", "ready", dict(id="fuzz", capacity="4", req="r1"), None, 0),
        ("coordinator", "heartbeat", dict(id="fuzz", rollouts="1", version="0", rate="1.0"), None, 0),
        ("coordinator", "consumption", dict(id="fuzz", epoch="0", req="c1", step="1"), {"prompt_ids": ("I64", [2], i64([0, 1]))}, 0),
        ("coordinator", "status", None, None, 0),
        ("weights", "weights_request", dict(id="fuzz", model="policy"), None, 0),
        ("rollouts", "rollout", rollout_sample["metadata"], rollout_sample["tensors"], 0),
    ]


def mutate(rng, metadata, tensors, version, kind):
    md = dict(metadata or {})
    ts = {k: list(v) for k, v in (tensors or {}).items()}
    header_lie = None
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        if op == 0 and md:  # an extreme value
            md[rng.choice(list(md))] = rng.choice(EXTREMES)
        elif op == 1 and md:  # a key dropped
            md.pop(rng.choice(list(md)))
        elif op == 2:  # a key added
            md[rng.choice(["x", "step", "epoch", "lease", "actor", "tasks", "release", "incarnation"])] = rng.choice(EXTREMES)
        elif op == 3:
            kind = rng.choice(list(KINDS.values()) + [0, 12, 65535])
        elif op == 4:
            version = rng.choice([0, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1])
        elif op == 5 and ts:  # a tensor's dtype or shape changed (the bytes stay)
            name = rng.choice(list(ts))
            if rng.random() < 0.5:
                ts[name][0] = rng.choice(["F64", "F32", "F16", "BF16", "I64", "I32", "I8", "U8", "BOOL", "X9"])
            else:
                ts[name][1] = rng.choice([[], [0], [-1], [2**62], [2**31, 2**31], [3, 0, 5], [1] * 40])
        elif op == 6 and ts:  # a tensor's bytes truncated or extended
            name = rng.choice(list(ts))
            raw = ts[name][2]
            ts[name][2] = raw[: rng.randrange(len(raw) + 1)] if rng.random() < 0.5 else raw + os.urandom(rng.randrange(1, 64))
        elif op == 7:
            header_lie = rng.choice([0, 1, 7, 2**63, 2**64 - 1])
        elif op == 8 and ts:
            ts.pop(rng.choice(list(ts)))
    return md, {k: tuple(v) for k, v in ts.items()}, version, kind, header_lie


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="ballast-fuzz-"))
    keys = tmp / "keys"
    subprocess.run([BIN, "keys", "--out", str(keys)], check=True, capture_output=True)
    cfg = write_config(tmp / "fuzz.yaml", Path(a.pipeline).resolve(), tmp / "out", steps=10_000_000, keys=keys)
    run = Run(tmp, tmp / "fuzz.yaml", cfg)
    sample_file = tmp / "sample.bin"
    subprocess.run([BIN, "wire", "sample", "--out", str(sample_file)], check=True, capture_output=True)
    raw = sample_file.read_bytes()
    (n,) = struct.unpack("<Q", raw[48:56])
    header = json.loads(raw[56:56 + n])
    data = raw[56 + n:]
    sample = {"metadata": header.pop("__metadata__", {}),
              "tensors": {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}}
    corpus = seeds(sample)
    ok = True
    try:
        run.coordinator(); run.learner(); run.actor("actor-0", keys=keys)
        run.wait_until(lambda s: s.get("learner", {}).get("step", 0) >= 1, what="a first learner step")
        ctx = zmq.Context()
        sockets = {"coordinator": ctx.socket(zmq.DEALER), "weights": ctx.socket(zmq.DEALER), "rollouts": ctx.socket(zmq.PUSH)}
        for name, s in sockets.items():
            s.curve_serverkey = (keys / "server.public").read_text().strip().encode()
            s.curve_publickey = (keys / "actor.public").read_text().strip().encode()
            s.curve_secretkey = (keys / "actor.secret").read_text().strip().encode()
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 100)
            s.setsockopt(zmq.SNDTIMEO, 100)
            s.connect(run.c[name])
        start = last_check = time.time()
        sent = 0
        while time.time() - start < a.seconds:
            target, kind_name, md, ts, version = rng.choice(corpus)
            md2, ts2, version2, kind2, lie = mutate(rng, md, ts, version, KINDS[kind_name])
            env, payload = frame(kind2, md2 if md2 or md is not None else None, ts2, version2, rng.randrange(2**64), lie)
            if rng.random() < 0.2 and payload:  # flip bytes inside the payload, then reseal
                p = bytearray(payload)
                for _ in range(rng.randint(1, 8)):
                    p[rng.randrange(len(p))] = rng.randrange(256)
                env, payload = reseal(env, bytes(p))
            try:
                sockets[target].send_multipart([env, payload])
                sent += 1
            except zmq.Again:
                pass
            for s in sockets.values():  # drain answers
                while s.socket_type == zmq.DEALER and s.poll(0):
                    s.recv_multipart()
            if time.time() - last_check > 5:
                last_check = time.time()
                dead = {n: p.poll() for n, p in run.procs.items() if p.poll() is not None}
                if dead:
                    ok = False
                    print(f"after {sent} frames, processes died: {dead}", flush=True)
                    break
                st = run.status(keys) or {}
                print(f"{time.time() - start:6.0f} s: {sent} frames sent; coordinator rejected {sum(st.get('errors', {}).values())}, "
                      f"learner rejected {st.get('learner', {}).get('errors')}; completed {st.get('completed')}", flush=True)
        ctx.destroy(linger=0)
        if ok:
            before = (run.status(keys) or {}).get("completed", 0)
            time.sleep(10)
            st = run.status(keys) or {}
            progress = st.get("completed", 0) > before
            counted = sum(st.get("errors", {}).values()) > 0 and st.get("learner", {}).get("errors", 0) > 0
            alive = all(p.poll() is None for p in run.procs.values())
            ok = progress and counted and alive
            print(f"{sent} frames: every process up {alive}; rejections counted (coordinator {st.get('errors')}, learner "
                  f"{st.get('learner', {}).get('errors')}) {counted}; still training {progress}")
    finally:
        run.stop()
    if not ok:
        for name in run.procs:
            print(f"--- {name}\n{run.log(name)[-3000:]}")
    print("fuzz " + ("passed" if ok else "FAILED") + f" ({tmp})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
