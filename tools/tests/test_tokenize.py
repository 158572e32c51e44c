"""`ballast tokenize` against the `tokenizers` library on the fixture tokenizers (pytest).

Run: python3 -m pytest -q tools/tests/test_tokenize.py
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, ballast_bin  # noqa: E402

FIXTURES = ROOT / "Tests" / "BallastTokenizersTests" / "Fixtures"
tokenizers = pytest.importorskip("tokenizers")


def tokenize(style, stdin, *flags, check=True):
    r = subprocess.run([ballast_bin(), "tokenize", "--tokenizer", FIXTURES / style, *flags], cwd=ROOT, input=stdin,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("style", ["gpt2", "llama3", "qwen2"])
def test_encode_and_decode_match_the_library(style):
    lib = tokenizers.Tokenizer.from_file(str(FIXTURES / style / "tokenizer.json"))
    texts = [json.loads(l)["text"] for l in (FIXTURES / "cases.jsonl").read_text(encoding="utf-8").split("\n") if l]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    ids = [json.loads(l) for l in tokenize(style, stdin, "--jsonl").stdout.split("\n")[:-1]]
    assert ids == [lib.encode(t).ids for t in texts]
    back = tokenize(style, "".join(json.dumps(i) + "\n" for i in ids), "--decode", "--jsonl", "--no-special-tokens").stdout
    # split on "\n" only: JSON output may hold a raw U+2028 or U+0085, which splitlines() would cut at
    assert [json.loads(l)["text"] for l in back.split("\n")[:-1]] == [lib.decode(i, skip_special_tokens=True) for i in ids]
    # plain lines: one array per line, the line's newline not included
    plain = [t for t in texts if "\n" not in t and "\r" not in t and "\x85" not in t and "\u2028" not in t][:200]
    out = tokenize(style, "".join(t + "\n" for t in plain), "--no-special-tokens").stdout.split("\n")[:-1]
    assert [json.loads(l) for l in out] == [lib.encode(t, add_special_tokens=False).ids for t in plain]


def test_bad_input_names_the_line():
    r = tokenize("gpt2", "[1, 2]\nnot json\n", "--decode", check=False)
    assert r.returncode != 0 and "stdin line 2" in r.stderr
    r = tokenize("gpt2", '{"text": "a"}\n{"txt": "b"}\n', "--jsonl", check=False)
    assert r.returncode != 0 and "stdin line 2" in r.stderr and '"text"' in r.stderr
