#!/usr/bin/env python3
"""Writes Tests/BallastModelTests/Fixtures/parity_tiny.safetensors with PyTorch.

For a tiny GPT-2 (2 layers, 2 heads, n_embd 32, byte vocabulary, two scalar heads) and a fixed batch
with right and left padding, it stores: the initial parameters, the batch, logits, scalar-head
outputs, the loss, every parameter's gradient, and the losses of 10 AdamW steps with gradient clipping.

Loss (what the Swift test recomputes):
    L = sum_n w_n * NLL(logits_n, target_n)  +  sum_{n,h} mask_n * (head[n,h] - G[n,h])^2 / sum(mask)
with w = 1/count over valid next-token targets (a masked mean) and G fixed random head targets. The single-step reference runs in float64; the 10-step trajectory in float32 with
torch.optim.AdamW (decay on matrices only) and clip_grad_norm_.

Also checks that this reference agrees with transformers.GPT2LMHeadModel at non-padding positions.
Usage: python3 tools/make_parity_fixtures.py [--check-hf]
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
import gpt_reference as ref  # noqa: E402

CFG = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 16, "vocab_size": 259, "layer_norm_epsilon": 1e-5}
HEADS = ("score", "value_head")
B, T = 3, 8
BOS, PAD = 256, 258
STEPS = 10
HYPER = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "max_grad_norm": 1.0}


def make_params(gen):
    params = {}
    for name, shape in ref.param_shapes(CFG, HEADS).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            t = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:
            t = 0.05 * torch.randn(shape, generator=gen)
        else:
            t = 0.1 * torch.randn(shape, generator=gen)
        params[name] = t.to(torch.float64)
    return params


def make_batch(gen):
    tokens = torch.randint(0, 256, (B, T), generator=gen)
    mask = torch.ones(B, T)
    mask[1, T - 3:] = 0  # right padding
    mask[2, :2] = 0  # left padding
    for b in range(B):
        first = int(mask[b].nonzero()[0])
        tokens[b, first] = BOS
    tokens[mask == 0] = PAD
    targets = torch.full((B, T), -1, dtype=torch.long)
    valid = (mask[:, :-1] > 0) & (mask[:, 1:] > 0)
    targets[:, :-1][valid] = tokens[:, 1:][valid]
    weights = (targets >= 0).double()
    weights = weights / weights.sum()
    G = torch.randn(B, T, len(HEADS), generator=gen, dtype=torch.float64) * mask[..., None].double()
    return tokens, mask, targets, weights, G


def loss_fn(params, tokens, mask, targets, weights, G):
    logits, heads = ref.forward(params, CFG, tokens, mask, HEADS)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    m = mask.to(logits.dtype)[..., None]
    head_loss = (m * (heads - G.to(logits.dtype)) ** 2).sum() / mask.sum()
    loss = (weights.to(logits.dtype) * nll).sum() + head_loss
    return loss, logits, heads


def main():
    gen = torch.Generator().manual_seed(20231024)
    params = make_params(gen)
    tokens, mask, targets, weights, G = make_batch(gen)

    p64 = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss, logits, heads = loss_fn(p64, tokens, mask, targets, weights, G)
    loss.backward()

    # Trajectory: float32, PyTorch's own AdamW and clipping.
    p32 = {k: v.float().clone().requires_grad_(True) for k, v in params.items()}
    decay = [v for v in p32.values() if v.dim() >= 2]
    no_decay = [v for v in p32.values() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": HYPER["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"], foreach=False)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        l32, _, _ = loss_fn(p32, tokens, mask, targets, weights, G)
        l32.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(p32.values()), HYPER["max_grad_norm"])))
        opt.step()
        losses.append(l32.item())

    out = {}
    for k, v in params.items():
        out["param." + k] = v.float().contiguous()
        out["grad." + k] = p64[k].grad.float().contiguous()
    out["tokens"] = tokens.int().contiguous()
    out["mask"] = mask.float().contiguous()
    out["targets"] = targets.int().contiguous()
    out["weights"] = weights.float().contiguous()
    out["head_targets"] = G.float().reshape(B * T, len(HEADS)).contiguous()
    out["logits"] = logits.detach().float().contiguous()
    out["heads"] = heads.detach().float().reshape(B * T, len(HEADS)).contiguous()
    out["loss"] = loss.detach().float().reshape(1)
    out["step_losses"] = torch.tensor(losses, dtype=torch.float32)
    out["step_grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    meta = {"config": json.dumps(CFG), "heads": json.dumps(list(HEADS)), "hyper": json.dumps(HYPER),
            "torch": torch.__version__}
    path = os.path.join(os.path.dirname(__file__), "..", "Tests", "BallastModelTests", "Fixtures", "parity_tiny.safetensors")
    save_file(out, os.path.normpath(path), metadata=meta)
    print(f"wrote {os.path.normpath(path)}: loss {float(loss):.6f}, step losses {losses[0]:.5f} -> {losses[-1]:.5f}")

    if "--check-hf" in sys.argv:
        from transformers import GPT2Config, GPT2LMHeadModel
        hf = GPT2LMHeadModel(GPT2Config(**CFG, activation_function="gelu_new", resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))
        hf.load_state_dict({k: v.float() for k, v in params.items() if k.startswith("transformer.")}, strict=False)
        hf.eval()
        with torch.no_grad():
            hl = hf(tokens, attention_mask=mask.long(), position_ids=ref.positions_from_mask(mask)).logits
        diff = (hl - logits.float())[mask > 0].abs().max()
        print(f"max |logits(transformers) - logits(reference)| at real tokens: {float(diff):.2e}")
        assert diff < 1e-4


if __name__ == "__main__":
    main()
