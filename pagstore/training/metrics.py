"""Per-epoch held-out metrics: clean accuracy and alignment with stored gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pagstore.loss import cosine_loss, input_grads_log_prob


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode, on its own device) on CPU tensors x (N, *S), y (N,)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        pred = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == y[i : i + batch_size]).sum())
    return correct / max(int(x.shape[0]), 1)


def alignment(model: nn.Module, x: torch.Tensor, grads: torch.Tensor, classes: torch.Tensor | None = None,
              batch_size: int = 32) -> float:
    """Mean cosine between grad_x log p(y|x) and stored gradients over all images and stored classes.

    x: (N, *S); grads: (N, K, *S); classes: (N, K) class ids of the grads (None: K = C, slot c is class c);
    CPU tensors (computed on the model's device). Eval mode, no augmentation.
    """
    model.eval()
    device = next(model.parameters()).device
    c = grads.shape[1]
    cos: list[np.ndarray] = []
    for i in range(0, x.shape[0], batch_size):
        xb, gb = x[i : i + batch_size], grads[i : i + batch_size]
        targets = torch.arange(c).expand(xb.shape[0], c) if classes is None else classes[i : i + batch_size]
        v = input_grads_log_prob(model, xb.to(device), targets.to(device), create_graph=False).cpu()
        cos.append((1.0 - cosine_loss(v.flatten(2).flatten(0, 1), gb.flatten(2).flatten(0, 1))).numpy())
    return float(np.concatenate(cos).mean()) if cos else float("nan")
