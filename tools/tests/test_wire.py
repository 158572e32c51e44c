"""The spec-only Python reader (tools/tests/wire_reader.py) decodes what Ballast writes, and rejects what
Ballast rejects. Run: python3 -m pytest -q tools/tests/test_wire.py (needs the ballast binary and numpy)."""
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import wire_reader  # noqa: E402
from harness import run  # noqa: E402


def ballast(*args, check=True):
    return run(*args, check=check, timeout=120)


def test_python_reader_decodes_a_ballast_frame(tmp_path):
    path = tmp_path / "frame.bin"
    ballast("wire", "sample", "--out", path)
    msg = wire_reader.decode_contiguous(path.read_bytes())
    assert (msg["kind"], msg["sequence"], msg["policy_version"]) == ("rollout", 3, 12)
    assert msg["metadata"] == {"task_names": '["qa","reverse"]', "epoch": "0", "lease": "7", "actor": "actor-0"}
    t = msg["tensors"]
    assert t["tokens"].tolist() == [256, 72, 105, 257, 256, 79, 107, 33, 257] and t["token_offsets"].tolist() == [0, 4, 9]
    assert t["prompt_tokens"].tolist() == [2, 2] and t["response_offsets"].tolist() == [0, 2, 5] and t["prompt_ids"].tolist() == [4, 9]
    assert t["task_ids"].dtype == np.int32 and t["task_ids"].tolist() == [0, 1]
    assert t["logp"].dtype == np.float32 and t["logp"].tolist() == [-0.5, -1.25, -0.125, -2, -0.75]
    assert t["scores"].tolist() == [1.5, -0.25] and t["gold"].tolist() == [1, 0]
    assert wire_reader.crc32c(b"123456789") == 0xE3069283


def test_both_sides_reject_corruption(tmp_path):
    path = tmp_path / "frame.bin"
    ballast("wire", "sample", "--out", path)
    good = path.read_bytes()
    for offset in (0, 5, 10, 44, 60, len(good) - 1):
        bad = bytearray(good)
        bad[offset] ^= 0x5A
        with pytest.raises(wire_reader.WireError):
            wire_reader.decode_contiguous(bytes(bad))
        path.write_bytes(bytes(bad))
        r = ballast("wire", "decode", path, check=False)
        assert r.returncode == 1 and "error:" in r.stderr, offset
    path.write_bytes(good)
    assert "rollout" in ballast("wire", "decode", path).stdout
