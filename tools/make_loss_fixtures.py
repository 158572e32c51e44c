#!/usr/bin/env python3
"""Writes Tests/BallastTrainTests/Fixtures/losses.safetensors: PyTorch references for the losses and
estimators on reward-model scores (inputs and outputs in float64).

- ranking: loss = mean(-logsigmoid(chosen - rejected)) and its gradients (autograd).
- ece: expected calibration error, 10 bins, each pair entered as (p, 1) and (1 - p, 0) with
  p = sigmoid(chosen - rejected) (a separate NumPy implementation of that definition).
- accuracy: mean of chosen > rejected (ties count half).
Usage: python3 tools/make_loss_fixtures.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "BallastTrainTests", "Fixtures", "losses.safetensors")


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
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.normpath(OUT), metadata={"torch": torch.__version__})
    print(f"wrote {os.path.normpath(OUT)}: ranking loss {float(loss.detach()):.6f}, ece {float(out['ece']):.6f}, accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
