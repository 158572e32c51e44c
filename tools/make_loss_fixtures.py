#!/usr/bin/env python3
"""Writes Tests/BallastTrainingTests/Fixtures/losses.safetensors: PyTorch references for the losses and
estimators on reward-model scores (inputs and outputs in float64).

- ranking: loss = mean(-logsigmoid(chosen - rejected)) and its gradients (autograd).
- ece: expected calibration error, 10 bins, each pair entered as (p, 1) and (1 - p, 0) with
  p = sigmoid(chosen - rejected) (a separate NumPy implementation of that definition).
- accuracy: mean of chosen > rejected (ties count half).
- am_*: the Advantage Model objective (ranking, expected reward, bound, per-task running mean and
  spread; see Sources/BallastTraining/AdvantageLoss.swift) with gradients and updated running statistics.
Usage: python3 tools/make_loss_fixtures.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "BallastTrainingTests", "Fixtures", "losses.safetensors")


def ece_reference(chosen, rejected, bins=10):
    p = 1 / (1 + np.exp(-(chosen - rejected)))
    probs = np.concatenate([p, 1 - p])
    labels = np.concatenate([np.ones_like(p), np.zeros_like(p)])
    idx = np.minimum((probs * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(labels[sel].mean() - probs[sel].mean())
    return ece


def main():
    g = torch.Generator().manual_seed(2309)
    chosen = (torch.randn(64, generator=g, dtype=torch.float64) * 2 + 0.5).requires_grad_(True)
    rejected = (torch.randn(64, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    loss = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    loss.backward()
    c, r = chosen.detach().numpy(), rejected.detach().numpy()
    acc = float(np.mean(np.where(c > r, 1.0, np.where(c == r, 0.5, 0.0))))
    out = {
        "chosen": chosen.detach(), "rejected": rejected.detach(),
        "ranking_loss": loss.detach().reshape(1), "ranking_d_chosen": chosen.grad, "ranking_d_rejected": rejected.grad,
        "ece": torch.tensor([ece_reference(c, r)], dtype=torch.float64),
        "accuracy": torch.tensor([acc], dtype=torch.float64),
    }
    out.update(advantage_fixture())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.normpath(OUT), metadata={"torch": torch.__version__})
    print(f"wrote {os.path.normpath(OUT)}: ranking loss {float(loss.detach()):.6f}, ece {float(out['ece']):.6f}, accuracy {acc:.4f}")



def advantage_fixture():
    """The Advantage Model objective of Sources/BallastTraining/AdvantageLoss.swift, by autograd."""
    g = torch.Generator().manual_seed(2310)
    b = 12
    rc = (torch.randn(b, generator=g, dtype=torch.float64) * 2 + 1).requires_grad_(True)
    rr = (torch.randn(b, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    e = (torch.randn(b, generator=g, dtype=torch.float64)).requires_grad_(True)
    task_ids = torch.tensor([0, 1, 2, 0, 1, 0, 0, 1, 2, 2, 0, 1])
    # old running stats: task 0 and 1 known, task 2 new (mean 0, var 1)
    old_mean = torch.tensor([0.3, -0.5, 0.0], dtype=torch.float64)
    old_var = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    coef = dict(ranking=1.0, expected=1.0, bound=0.1, margin=2.5, task_mean=0.1, task_spread=0.1, target_std=1.0, momentum=0.9)
    ac, ar = rc - e, rr - e
    ranking = -torch.nn.functional.logsigmoid(ac - ar).mean()
    expected = ((e - ((rc + rr) / 2).detach()) ** 2).mean()
    a_all = torch.cat([ac, ar])
    bound = torch.nn.functional.softplus(a_all.abs() - coef["margin"]).mean()
    tasks_all = torch.cat([task_ids, task_ids])
    means, spreads, new_mean, new_var = [], [], old_mean.clone(), old_var.clone()
    for t in range(3):
        at = a_all[tasks_all == t]
        bm = at.mean()
        bv = ((at - bm) ** 2).mean()
        mu = coef["momentum"] * old_mean[t] + (1 - coef["momentum"]) * bm
        v = coef["momentum"] * old_var[t] + (1 - coef["momentum"]) * bv
        means.append(mu ** 2)
        spreads.append((v.sqrt() - coef["target_std"]) ** 2)
        new_mean[t], new_var[t] = mu.detach(), v.detach()
    task_mean = torch.stack(means).mean()
    task_spread = torch.stack(spreads).mean()
    total = (coef["ranking"] * ranking + coef["expected"] * expected + coef["bound"] * bound
             + coef["task_mean"] * task_mean + coef["task_spread"] * task_spread)
    total.backward()
    return {
        "am_r_chosen": rc.detach(), "am_r_rejected": rr.detach(), "am_e": e.detach(), "am_task": task_ids.int(),
        "am_old_mean": old_mean, "am_old_var": old_var,
        "am_terms": torch.stack([ranking, expected, bound, task_mean, task_spread, total]).detach(),
        "am_d_chosen": rc.grad, "am_d_rejected": rr.grad, "am_d_e": e.grad,
        "am_new_mean": new_mean, "am_new_var": new_var,
    }


if __name__ == "__main__":
    main()
