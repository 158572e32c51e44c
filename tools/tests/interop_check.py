#!/usr/bin/env python3
"""Helpers for checking Hugging Face interop of Ballast checkpoints (used by tools/tests/test_interop.py).

A Ballast checkpoint is a folder with config.json (GPT2Config fields) and model.safetensors (HF names,
"transformer." prefix, no lm_head.weight because embeddings are tied), so
transformers.GPT2LMHeadModel.from_pretrained reads it directly, and Ballast reads what save_pretrained
writes. The helpers here run the same padded batch through both and compare logits at real tokens.

Conventions: byte tokenizer (byte b = id b, BOS 256, EOS 257, PAD 258, vocab 259); a prompt TEXT is
[256] + TEXT.encode("utf-8"); positions come from the mask (cumsum(mask) - 1, clamped at 0) and are
passed to transformers explicitly, so left padding works. The Ballast binary is $BALLAST_BIN, else
.build/release/ballast, else .build/debug/ballast (relative to the repository root).

Run directly, it checks only the Python side (no Ballast binary needed): transformers with padding
and explicit positions equals unpadded single rows and tools/fixtures/gpt_reference.py, and a save_pretrained /
from_pretrained round trip keeps every tensor.
  python3 tools/tests/interop_check.py
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from harness import ROOT, ballast_bin  # noqa: E402,F401

BOS, EOS, PAD, VOCAB = 256, 257, 258, 259
TINY = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64}  # `ballast init --preset tiny`


# ---------------------------------------------------------------- Ballast binary

def ballast(*args, timeout=300):
    """Runs the Ballast CLI from the repository root and returns its stdout; raises on failure."""
    cmd = [ballast_bin(), *map(str, args)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def ballast_logits(ckpt, tokens, mask, workdir):
    """`ballast forward` on a [B,T] batch; returns logits [B,T,V] (float32)."""
    workdir = Path(workdir)
    inp, out = workdir / "forward_in.json", workdir / "forward_out.safetensors"
    inp.write_text(json.dumps({"tokens": tokens.tolist(), "mask": mask.tolist()}))
    ballast("forward", "--model", ckpt, "--input", inp, "--out", out)
    return load_file(str(out))["logits"]


def ballast_generate(ckpt, prompt, max_new_tokens):
    """`ballast generate --greedy --json`; returns the parsed JSON object."""
    out = ballast("generate", "--model", ckpt, "--prompt", prompt, "--greedy", "--json",
                  "--max-new-tokens", max_new_tokens)
    lines = [l for l in out.splitlines() if l.strip()]
    return json.loads(lines[-1])


# ---------------------------------------------------------------- transformers side

def encode(text):
    return [BOS] + list(text.encode("utf-8"))


def positions_from_mask(mask):
    return (mask.long().cumsum(1) - 1).clamp(min=0) * mask.long()


def padded_batch(seed=11):
    """3 rows of length 10: full, right-padded (7 real), left-padded (6 real); BOS first in each row."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 256, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, :4] = 0
    tokens[0, 0], tokens[1, 0], tokens[2, 4] = BOS, BOS, BOS
    tokens[mask == 0] = PAD
    return tokens, mask


def hf_config(**overrides):
    kw = dict(TINY, vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
              activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
              tie_word_embeddings=True)
    kw.update(overrides)
    return transformers.GPT2Config(**kw)


def hf_model(seed, initializer_range=0.02, noise=0.1):
    """Random GPT2LMHeadModel (eval mode); LayerNorm weights/biases and all biases get N(0, noise) added
    so that a loader that ignores them, or swaps them, is caught."""
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(hf_config(initializer_range=initializer_range)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(noise * torch.randn_like(p))
    return model


def load_hf(ckpt):
    """from_pretrained, failing if any weight was missing (randomly initialized) or left unused."""
    model, info = transformers.GPT2LMHeadModel.from_pretrained(str(ckpt), output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if k != "lm_head.weight"]
    unexpected = list(info.get("unexpected_keys", []))
    if missing or unexpected:
        raise AssertionError(f"{ckpt}: missing {missing}, unexpected {unexpected}")
    return model.float().eval()


def hf_logits(model, tokens, mask):
    with torch.no_grad():
        return model(input_ids=tokens, attention_mask=mask, position_ids=positions_from_mask(mask)).logits


def hf_greedy(model, ids, max_new_tokens):
    """Greedy generation of one prompt; returns (new ids, log-prob of each under the raw logits)."""
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=EOS, pad_token_id=PAD,
                             use_cache=True, return_dict_in_generate=True, output_logits=True)
    new = out.sequences[0, len(ids):].tolist()
    logprobs = [torch.log_softmax(l[0].float(), -1)[t].item() for l, t in zip(out.logits, new)]
    return new, logprobs


def max_diff_at_real_tokens(a, b, mask):
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return (a.float() - b.float())[mask.bool()].abs().max().item()


# ---------------------------------------------------------------- Python-only self-check

def self_check():
    """Checks the transformers side of the comparison without the Ballast binary."""
    import gpt_reference as ref

    model = hf_model(3)
    tokens, mask = padded_batch()
    padded = hf_logits(model, tokens, mask)
    for b in range(tokens.shape[0]):
        real = mask[b].bool()
        alone = hf_logits(model, tokens[b, real][None], mask[b, real][None])[0]
        d = (padded[b, real] - alone).abs().max().item()
        print(f"row {b}: padded vs alone {d:.2e}")
        assert d < 1e-5, d
    params = {k: v.detach() for k, v in model.state_dict().items() if k.startswith("transformer.") and ".attn.bias" not in k}
    want, _ = ref.forward(params, model.config.to_dict(), tokens, mask)
    d = max_diff_at_real_tokens(padded, want, mask)
    print(f"transformers vs gpt_reference at real tokens {d:.2e}")
    assert d < 1e-5, d
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        names = sorted(load_file(os.path.join(tmp, "model.safetensors")))
        assert "lm_head.weight" not in names and all(n.startswith("transformer.") for n in names), names
        d = max_diff_at_real_tokens(hf_logits(load_hf(tmp), tokens, mask), padded, mask)
        print(f"save_pretrained/from_pretrained round trip {d:.2e}")
        assert d == 0, d
    big = hf_model(5, initializer_range=0.2)
    for prompt in ("12+34=", "hello", "reverse abc:"):
        new, lps = hf_greedy(big, encode(prompt), 24)
        print(f"greedy {prompt!r}: {new} ({len(set(new))} distinct)")
        assert len(set(new)) > 2 and len(lps) == len(new)
    print("ok")


if __name__ == "__main__":
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    self_check()
