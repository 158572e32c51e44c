"""Hugging Face interop of Ballast checkpoints (pytest; needs torch, transformers, safetensors and the
Ballast binary: $BALLAST_BIN, else .build/release/ballast, else .build/debug/ballast).

1. transformers.GPT2LMHeadModel.from_pretrained loads a `ballast init` checkpoint and gives Ballast's logits.
2. Ballast loads a checkpoint that transformers saved and gives transformers' logits.
3. Greedy generation agrees token for token (and log-prob for log-prob, loosely).
4. The same both ways for the Llama family (LlamaForCausalLM, Qwen2ForCausalLM, Qwen2ForSequenceClassification).
The batch has a full, a right-padded and a left-padded row; logits are compared at real tokens only.
Helpers live in tools/tests/interop_check.py.
  python3 -m pytest -q tools/tests/test_interop.py
"""
import os
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interop_check as ic  # noqa: E402

TOL = 1e-4
PROMPTS = ["12+34=", "hello", "reverse abc:"]
NEW_TOKENS = 24


def test_transformers_loads_ballast_checkpoint(tmp_path):
    ckpt = tmp_path / "ballast"
    ic.ballast("init", "--preset", "tiny", "--seed", 7, "--out", ckpt)
    model = ic.load_hf(ckpt)
    cfg = model.config
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions, cfg.vocab_size) == (2, 2, 32, 64, 259)
    tokens, mask = ic.padded_batch()
    diff = ic.max_diff_at_real_tokens(ic.hf_logits(model, tokens, mask), ic.ballast_logits(ckpt, tokens, mask, tmp_path), mask)
    assert diff < TOL, f"max |logits diff| at real tokens {diff:.3e}"


def test_ballast_loads_transformers_checkpoint(tmp_path):
    model = ic.hf_model(3)
    ckpt = tmp_path / "hf"
    model.save_pretrained(str(ckpt), safe_serialization=True)
    tokens, mask = ic.padded_batch()
    diff = ic.max_diff_at_real_tokens(ic.hf_logits(model, tokens, mask), ic.ballast_logits(ckpt, tokens, mask, tmp_path), mask)
    assert diff < TOL, f"max |logits diff| at real tokens {diff:.3e}"


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    """Large random weights (initializer_range 0.2) so greedy outputs vary from token to token."""
    model = ic.hf_model(5, initializer_range=0.2)
    ckpt = tmp_path_factory.mktemp("hf_big")
    model.save_pretrained(str(ckpt), safe_serialization=True)
    return model, ckpt


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generation_agrees(big_model, prompt):
    model, ckpt = big_model
    ids = ic.encode(prompt)
    want, want_lp = ic.hf_greedy(model, ids, NEW_TOKENS)
    assert len(set(want)) > 2, "test needs varied output to mean something"
    got = ic.ballast_generate(ckpt, prompt, NEW_TOKENS)
    assert got["prompt_ids"] == ids
    assert got["output_ids"] == want
    assert len(got["logprobs"]) == len(want)
    lp = max(abs(a - b) for a, b in zip(got["logprobs"], want_lp))
    assert lp < 1e-3, f"max |logprob diff| {lp:.3e}"


@pytest.mark.parametrize("heads", [["score"], ["score", "expected_reward_head"]])
def test_reward_model_loads_as_sequence_classifier(tmp_path, heads):
    """A Ballast reward model (or an Advantage Model, whose e-head is an extra tensor transformers
    ignores) is a GPT2ForSequenceClassification: same score at the last real token of right-padded rows."""
    import json

    import torch
    import transformers
    from safetensors.torch import load_file

    ckpt = tmp_path / "rm"
    ic.ballast("init", "--preset", "tiny", "--seed", 9, *[a for h in heads for a in ("--head", h)], "--out", ckpt)
    model = transformers.GPT2ForSequenceClassification.from_pretrained(str(ckpt)).eval()
    assert model.config.num_labels == 1 and model.config.pad_token_id == 258
    rows = [[256, 1, 2, 3, 4, 257], [256, 9, 8, 257, 258, 258], [256, 7, 257, 258, 258, 258]]
    tokens = torch.tensor(rows)
    mask = (tokens != 258).long()
    with torch.no_grad():
        hf = model(input_ids=tokens, attention_mask=mask).logits[:, 0]
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"tokens": rows, "mask": mask.tolist()}))
    ic.ballast("forward", "--model", ckpt, "--input", inp, "--out", tmp_path / "o.safetensors")
    scores = load_file(str(tmp_path / "o.safetensors"))["heads"][..., 0]
    last = mask.sum(1) - 1
    ours = scores[torch.arange(3), last]
    assert (hf - ours).abs().max().item() < 1e-4


def test_auto_tokenizer_loads_a_ballast_checkpoint(tmp_path):
    """Checkpoints carry the byte tokenizer as Hugging Face files: AutoTokenizer gives Ballast's ids."""
    from transformers import AutoTokenizer
    ckpt = tmp_path / "ballast"
    ic.ballast("init", "--preset", "tiny", "--seed", 7, "--out", ckpt)
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    for text in PROMPTS + ["naïve café 😀 中文\r\n\t  x", ""]:
        ids = tok(text).input_ids
        assert ids == [256] + list(text.encode("utf-8")), text
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (256, 257, 258)


@pytest.mark.parametrize("architecture,extra", [("llama", ["--untied"]), ("qwen2", [])])
def test_transformers_loads_ballast_llama_family_checkpoint(tmp_path, architecture, extra):
    """AutoModelForCausalLM reads a Llama / Qwen2 checkpoint Ballast wrote (grouped-query attention, untied
    or tied head, Qwen2's QKV biases) with nothing missing or left over, and gives Ballast's logits."""
    import transformers
    ckpt = tmp_path / architecture
    ic.ballast("init", "--preset", "tiny", "--architecture", architecture, "--n-layer", 3, "--n-head", 4, *extra,
               "--seed", 7, "--out", ckpt)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(str(ckpt), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    cfg = model.config
    assert (cfg.model_type, cfg.num_attention_heads, cfg.num_key_value_heads) == (architecture, 4, 2)
    assert cfg.tie_word_embeddings == (architecture == "qwen2")
    tokens, mask = ic.padded_batch()
    diff = ic.max_diff_at_real_tokens(ic.hf_logits(model.float().eval(), tokens, mask),
                                      ic.ballast_logits(ckpt, tokens, mask, tmp_path), mask)
    assert diff < TOL, f"max |logits diff| at real tokens {diff:.3e}"


def test_ballast_loads_transformers_qwen2_checkpoint(tmp_path):
    """Ballast reads what Qwen2ForCausalLM.save_pretrained writes and gives its logits."""
    import torch
    import transformers
    torch.manual_seed(4)
    cfg = transformers.Qwen2Config(vocab_size=ic.VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                                   rope_theta=1e6, tie_word_embeddings=True, bos_token_id=ic.BOS, eos_token_id=ic.EOS,
                                   pad_token_id=ic.PAD, initializer_range=0.1)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    ckpt = tmp_path / "hf"
    model.save_pretrained(str(ckpt), safe_serialization=True)
    tokens, mask = ic.padded_batch()
    diff = ic.max_diff_at_real_tokens(ic.hf_logits(model, tokens, mask), ic.ballast_logits(ckpt, tokens, mask, tmp_path), mask)
    assert diff < TOL, f"max |logits diff| at real tokens {diff:.3e}"


def test_qwen2_reward_model_loads_as_sequence_classifier(tmp_path):
    """A Ballast Qwen2 reward model loads as Qwen2ForSequenceClassification (nothing missing), and the
    classifier saved back (score weights scaled up) loads in Ballast with the same score at the last real token."""
    import json

    import torch
    import transformers
    from safetensors.torch import load_file

    ckpt = tmp_path / "rm"
    ic.ballast("init", "--preset", "tiny", "--architecture", "qwen2", "--n-head", 4, "--head", "score", "--seed", 9, "--out", ckpt)
    model, info = transformers.Qwen2ForSequenceClassification.from_pretrained(str(ckpt), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    model.eval()
    assert model.config.num_labels == 1 and model.config.pad_token_id == ic.PAD
    with torch.no_grad():  # random init is near zero: larger score weights make the comparison mean something
        model.score.weight.mul_(50)
    ours_ckpt = tmp_path / "rm_scaled"
    model.save_pretrained(str(ours_ckpt), safe_serialization=True)
    rows = [[256, 1, 2, 3, 4, 257], [256, 9, 8, 257, 258, 258], [256, 7, 257, 258, 258, 258]]
    tokens = torch.tensor(rows)
    mask = (tokens != ic.PAD).long()
    with torch.no_grad():
        hf = model(input_ids=tokens, attention_mask=mask).logits[:, 0]
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"tokens": rows, "mask": mask.tolist()}))
    ic.ballast("forward", "--model", ours_ckpt, "--input", inp, "--out", tmp_path / "o.safetensors")
    scores = load_file(str(tmp_path / "o.safetensors"))["heads"][..., 0]
    ours = scores[torch.arange(3), mask.sum(1) - 1]
    assert hf.abs().max().item() > 0.05, "scores too small to compare"
    assert (hf - ours).abs().max().item() < 1e-4, (hf, ours)
