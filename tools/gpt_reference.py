"""A plain-PyTorch GPT-2 with Ballast's conventions, used to make reference fixtures.

Parameters are a dict keyed by Hugging Face GPT-2 names (Conv1D weights are [in, out]); scalar heads
are extra "<name>.weight" tensors of shape [1, n_embd] read from the final hidden state.

Attention visibility (same rule as Ballast's kernels): query i sees key j when j <= i and key j is not
padding, and always sees itself. Positions come from the mask: the k-th real token of a row has
position k.
"""
import math
import torch
import torch.nn.functional as F


def positions_from_mask(mask):
    return (torch.cumsum(mask.long(), dim=1) - 1).clamp(min=0) * mask.long()


def forward(params, cfg, tokens, mask, heads=()):
    """Returns (logits [B,T,V], head outputs [B,T,H])."""
    B, T = tokens.shape
    C, nh, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // nh
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    p = params
    pos = positions_from_mask(mask)
    x = p["transformer.wte.weight"][tokens] + p["transformer.wpe.weight"][pos]
    idx = torch.arange(T)
    allowed = (idx[None, :, None] >= idx[None, None, :]) & (mask[:, None, :] > 0)
    allowed = allowed | torch.eye(T, dtype=torch.bool)[None]
    allowed = allowed[:, None]  # [B,1,T,T]
    for l in range(L):
        pre = f"transformer.h.{l}."
        h = F.layer_norm(x, (C,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        qkv = h @ p[pre + "attn.c_attn.weight"] + p[pre + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, nh, hs).transpose(1, 2)
        k = k.view(B, T, nh, hs).transpose(1, 2)
        v = v.view(B, T, nh, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[pre + "attn.c_proj.weight"] + p[pre + "attn.c_proj.bias"]
        h = F.layer_norm(x, (C,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        h = F.gelu(h @ p[pre + "mlp.c_fc.weight"] + p[pre + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ p[pre + "mlp.c_proj.weight"] + p[pre + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    logits = x @ p["transformer.wte.weight"].T
    hv = torch.stack([x @ p[f"{h}.weight"][0] for h in heads], dim=-1) if heads else x[..., :0]
    return logits, hv


def param_shapes(cfg, heads=()):
    C, V, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    shapes = {"transformer.wte.weight": [V, C], "transformer.wpe.weight": [P, C]}
    for l in range(cfg["n_layer"]):
        pre = f"transformer.h.{l}."
        shapes.update({
            pre + "ln_1.weight": [C], pre + "ln_1.bias": [C],
            pre + "attn.c_attn.weight": [C, 3 * C], pre + "attn.c_attn.bias": [3 * C],
            pre + "attn.c_proj.weight": [C, C], pre + "attn.c_proj.bias": [C],
            pre + "ln_2.weight": [C], pre + "ln_2.bias": [C],
            pre + "mlp.c_fc.weight": [C, 4 * C], pre + "mlp.c_fc.bias": [4 * C],
            pre + "mlp.c_proj.weight": [4 * C, C], pre + "mlp.c_proj.bias": [C],
        })
    shapes["transformer.ln_f.weight"] = [C]
    shapes["transformer.ln_f.bias"] = [C]
    for h in heads:
        shapes[f"{h}.weight"] = [1, C]
    return shapes
