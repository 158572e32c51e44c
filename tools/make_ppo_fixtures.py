#!/usr/bin/env python3
"""Writes Tests/BallastRLTests/Fixtures/ppo.safetensors: PyTorch references (float64) for PPO's pieces,
written the way TRL / OpenRLHF compute them:

- KL estimators k1, k2, k3 between policy and reference log-probs;
- per-token rewards: -beta * k1 on response tokens, plus the clipped score on each row's last token;
- GAE (gamma = 1, lambda = 0.95) and returns;
- masked whitening of advantages (unbiased variance, as TRL's masked_whiten);
- clipped policy loss (eps 0.2) and its gradient w.r.t. log-probs (autograd), with clip fraction;
- clipped value loss (0.5 * max of squared errors) and its gradient w.r.t. values (autograd);
- entropy of categorical distributions from logits;
- one adaptive KL controller update.
Usage: python3 tools/make_ppo_fixtures.py
"""
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "BallastRLTests", "Fixtures", "ppo.safetensors")
B, T = 3, 6
BETA, SCORE_CLIP, GAMMA, LAM, EPS, VEPS = 0.05, 2.0, 1.0, 0.95, 0.2, 0.2


def masked_mean(x, m):
    return (x * m).sum() / m.sum()


def masked_whiten(x, m):
    mean = masked_mean(x, m)
    centered = x - mean
    var = masked_mean(centered ** 2, m) * m.sum() / (m.sum() - 1)
    return centered * torch.rsqrt(var + 1e-8) * m


def main():
    g = torch.Generator().manual_seed(77)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]], dtype=torch.float64)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    ref = logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    scores = torch.tensor([3.5, -0.7, 1.2], dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)

    k1 = (logp - ref) * mask
    k2 = 0.5 * (logp - ref) ** 2 * mask
    k3 = ((torch.exp(ref - logp) - 1) - (ref - logp)) * mask
    rewards = -BETA * k1
    last = mask.sum(1).long() - 1
    rewards[torch.arange(B), last] += scores.clamp(-SCORE_CLIP, SCORE_CLIP)

    adv = torch.zeros(B, T, dtype=torch.float64)
    lastgae = torch.zeros(B, dtype=torch.float64)
    for t in reversed(range(T)):
        nextv = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros(B, dtype=torch.float64)
        delta = rewards[:, t] + GAMMA * nextv - values[:, t]
        lastgae = (delta + GAMMA * LAM * lastgae) * mask[:, t]
        adv[:, t] = lastgae
    returns = (adv + values) * mask
    white = masked_whiten(adv, mask)

    # A new policy whose ratios straddle the clip range.
    new_logp = (logp + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.6).requires_grad_(True)
    ratio = torch.exp(new_logp - logp)
    pg1, pg2 = -white * ratio, -white * ratio.clamp(1 - EPS, 1 + EPS)
    pg_loss = masked_mean(torch.max(pg1, pg2), mask)
    pg_loss.backward()
    clipfrac = masked_mean((pg2 > pg1).double(), mask)

    new_values = (values + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.4).requires_grad_(True)
    vclipped = values + (new_values - values).clamp(-VEPS, VEPS)
    vf_loss = 0.5 * masked_mean(torch.max((new_values - returns) ** 2, (vclipped - returns) ** 2), mask)
    vf_loss.backward()

    logits = torch.randn(4, 9, generator=g, dtype=torch.float64) * 2
    ent = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)

    beta0, target, horizon, cur_kl, n = 0.1, 6.0, 10000.0, 7.5, 256
    err = min(max(cur_kl / target - 1, -0.2), 0.2)
    beta1 = beta0 * (1 + err * n / horizon)

    out = {
        "mask": mask, "logp": logp, "ref_logp": ref, "scores": scores, "values": values,
        "k1": k1, "k2": k2, "k3": k3, "rewards": rewards, "advantages": adv, "returns": returns, "whitened": white,
        "new_logp": new_logp.detach(), "policy_loss": pg_loss.detach().reshape(1), "policy_d_logp": new_logp.grad,
        "clip_fraction": clipfrac.reshape(1),
        "new_values": new_values.detach(), "value_loss": vf_loss.detach().reshape(1), "value_d_values": new_values.grad,
        "entropy_logits": logits, "entropy": ent,
        "kl_controller": torch.tensor([beta0, target, horizon, cur_kl, n, beta1], dtype=torch.float64),
        "constants": torch.tensor([BETA, SCORE_CLIP, GAMMA, LAM, EPS, VEPS], dtype=torch.float64),
    }
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.normpath(OUT), metadata={"torch": torch.__version__})
    print(f"wrote {os.path.normpath(OUT)}: policy loss {float(pg_loss.detach()):.6f}, value loss {float(vf_loss.detach()):.6f}, clip fraction {float(clipfrac):.3f}")


if __name__ == "__main__":
    main()
