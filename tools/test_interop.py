"""Hugging Face interop of Ballast checkpoints (pytest; needs torch, transformers, safetensors).

1. transformers.GPT2LMHeadModel.from_pretrained loads a Ballast checkpoint and gives Ballast's logits.
2. Ballast loads a checkpoint that transformers saved and gives transformers' logits.
3. Greedy generation agrees token for token.
Padding (left and right) is included; positions follow Ballast's rule (cumsum(mask) - 1), passed to
transformers explicitly. BALLAST_BIN points at the binary (default .build/release/ballast).
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st = pytest.importorskip("safetensors.torch")

ROOT = Path(__file__).resolve().parent.parent
BOS, EOS, PAD = 256, 257, 258


def ballast(*args):
    exe = os.environ.get("BALLAST_BIN") or next(
        (str(p) for p in (ROOT / ".build/release/ballast", ROOT / ".build/debug/ballast") if p.exists()), None)
    assert exe, "build ballast first (swift build -c release) or set BALLAST_BIN"
    r = subprocess.run([exe, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"ballast {args} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def padded_batch():
    """3 rows of length 10: full, right-padded, left-padded."""
    g = torch.Generator().manual_seed(11)
    tokens = torch.randint(0, 256, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, :4] = 0
    tokens[0, 0], tokens[1, 0], tokens[2, 4] = BOS, BOS, BOS
    tokens[mask == 0] = PAD
    return tokens, mask


def hf_logits(model, tokens, mask):
    pos = ((mask.cumsum(1) - 1).clamp(min=0) * mask)
    with torch.no_grad():
        return model(input_ids=tokens, attention_mask=mask, position_ids=pos).logits


def ballast_logits(ckpt, tokens, mask, tmp_path):
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"tokens": tokens.tolist(), "mask": mask.tolist()}))
    out = tmp_path / "logits.safetensors"
    ballast("forward", "--model", ckpt, "--input", inp, "--out", out)
    return st.load_file(str(out))["logits"]


def hf_model(seed, init_range=0.02):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=259,
                                  bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                                  activation_function="gelu_new", initializer_range=init_range,
                                  resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # make biases and LayerNorms non-trivial
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def test_transformers_loads_ballast_checkpoint(tmp_path):
    ckpt = tmp_path / "ballast"
    ballast("init", "--preset", "tiny", "--seed", 7, "--out", ckpt)
    model = transformers.GPT2LMHeadModel.from_pretrained(str(ckpt)).eval()
    tokens, mask = padded_batch()
    ref = hf_logits(model, tokens, mask)
    ours = ballast_logits(ckpt, tokens, mask, tmp_path)
    diff = (ref - ours)[mask.bool()].abs().max().item()
    assert diff < 1e-4, diff


def test_ballast_loads_transformers_checkpoint(tmp_path):
    model = hf_model(3)
    ckpt = tmp_path / "hf"
    model.save_pretrained(str(ckpt), safe_serialization=True)
    tokens, mask = padded_batch()
    ref = hf_logits(model, tokens, mask)
    ours = ballast_logits(ckpt, tokens, mask, tmp_path)
    diff = (ref - ours)[mask.bool()].abs().max().item()
    assert diff < 1e-4, diff


@pytest.mark.parametrize("prompt", ["12+34=", "hello", "reverse abc:"])
def test_greedy_generation_agrees(tmp_path, prompt):
    model = hf_model(5, init_range=0.2)  # large weights: outputs vary from token to token
    ckpt = tmp_path / "hf"
    model.save_pretrained(str(ckpt), safe_serialization=True)
    ids = [BOS] + list(prompt.encode())
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=24, eos_token_id=EOS, pad_token_id=PAD)
    hf_new = out[0, len(ids):].tolist()
    ours = json.loads(ballast("generate", "--model", ckpt, "--prompt", prompt, "--greedy", "--json",
                              "--max-new-tokens", 24))
    assert ours["prompt_ids"] == ids
    assert ours["output_ids"] == hf_new
    assert len(set(hf_new)) > 2, "test needs varied output to mean something"
