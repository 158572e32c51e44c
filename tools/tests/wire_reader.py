#!/usr/bin/env python3
"""A reader of Ballast's wire format written from the spec alone (Sources/BallastWire/WIRE.md).

decode(envelope: bytes, payload: bytes) -> dict with kind, sequence, policy_version, metadata and
tensors (NumPy arrays); raises WireError for every rejection rule of the spec.
Usage: python3 tools/tests/wire_reader.py FRAME_FILE   (a frame stored contiguously: envelope + payload)
"""
import json
import struct
import sys

import numpy as np

ENVELOPE = 48
KINDS = {1: "hello", 2: "ready", 3: "lease", 4: "heartbeat", 5: "rollout", 6: "consumption", 7: "version_notice",
         8: "weights_request", 9: "weights", 10: "status", 11: "error"}
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
          "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": None}


class WireError(Exception):
    pass


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def decode(envelope: bytes, payload: bytes, max_payload: int = 1 << 30) -> dict:
    if len(envelope) < ENVELOPE:
        raise WireError("envelope too short")
    magic, version, kind, seq, pver, length, pcrc, hcrc, reserved = struct.unpack("<4sHHQQQIIQ", envelope[:ENVELOPE])
    if magic != b"BLWF":
        raise WireError("bad magic")
    if hcrc != crc32c(envelope[:36]):
        raise WireError("header checksum")
    if reserved != 0:
        raise WireError("reserved not zero")
    if version != 2:
        raise WireError(f"unsupported version {version}")
    if kind not in KINDS:
        raise WireError(f"unknown kind {kind}")
    if length > max_payload:
        raise WireError("oversize")
    if length != len(payload):
        raise WireError("length mismatch")
    if pcrc != crc32c(payload):
        raise WireError("payload checksum")
    out = {"kind": KINDS[kind], "sequence": seq, "policy_version": pver, "metadata": {}, "tensors": {}}
    if not payload:
        return out
    if len(payload) < 8:
        raise WireError("payload shorter than its header length")
    (n,) = struct.unpack("<Q", payload[:8])
    if n > len(payload) - 8:
        raise WireError("payload header runs past the end")
    try:
        header = json.loads(payload[8:8 + n])
    except ValueError as e:
        raise WireError(f"payload header is not JSON: {e}")
    if not isinstance(header, dict):
        raise WireError("payload header is not an object")
    data = payload[8 + n:]
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise WireError("metadata must map strings to strings")
            out["metadata"] = dict(info)
            continue
        dtype = info.get("dtype")
        if dtype not in DTYPES:
            raise WireError(f"unknown dtype {dtype}")
        shape, (b, e) = info["shape"], info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        size = 2 if dtype == "BF16" else np.dtype(DTYPES[dtype]).itemsize
        if not (0 <= b <= e <= len(data)) or e - b != count * size:
            raise WireError(f"tensor {name}: offsets out of range or wrong size")
        if e > b:
            spans.append((b, e, name))
        raw = data[b:e]
        if dtype == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<"))
        out["tensors"][name] = arr.reshape(shape)
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise WireError(f"tensors {n0} and {n1} overlap")
    return out


def decode_contiguous(frame: bytes) -> dict:
    return decode(frame[:ENVELOPE], frame[ENVELOPE:])


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        msg = decode_contiguous(f.read())
    print(json.dumps({k: v for k, v in msg.items() if k != "tensors"}, indent=1))
    for name, arr in msg["tensors"].items():
        print(f"{name}: {arr.dtype} {list(arr.shape)} {arr.ravel()[:6].tolist()}")
