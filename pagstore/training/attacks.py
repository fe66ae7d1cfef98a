"""PGD for adversarial training (Madry et al.) and the TRADES inner maximisation (Zhang et al.).

Defaults follow the paper's training recipe: 7 steps of size 1.5 * eps / 7 from a random start, images
clamped to [0, 1]. The attack runs with the model in eval mode (BN statistics untouched) and restores
the previous mode.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

Norm = Literal["l2", "linf"]


def _flat_norm(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))


def project(delta: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """Project perturbations (B, *S) onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _flat_norm(delta)).clamp(max=1.0)


def random_start(x: torch.Tensor, norm: Norm, eps: float, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform in the L-inf box; for L2 a uniform direction with radius eps * U(0, 1)."""
    if norm == "linf":
        return (torch.rand(x.shape, generator=generator) * 2 - 1).to(x) * eps
    d = torch.randn(x.shape, generator=generator).to(x)
    r = torch.rand(x.shape[0], generator=generator).to(x).view(-1, *([1] * (x.dim() - 1)))
    return d / _flat_norm(d) * r * eps


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    norm: Norm,
    eps: float,
    steps: int = 7,
    step_size: float | None = None,
    loss: Literal["ce", "kl"] = "ce",
    rand_init: bool = True,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Maximise the loss inside the ``norm``-ball of radius ``eps`` around ``x``; returns detached x_adv.

    Args:
        x: (B, *S) model-space inputs. y: int64 (B,) labels, needed for ``loss="ce"``.
        loss: "ce" = cross-entropy with y (AT); "kl" = KL(p(x) || p(x_adv)) (TRADES inner maximisation).
        step_size: default 1.5 * eps / steps.
        clamp: valid input range ([0, 1] images) or None for unbounded vector data.
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"PGD norm must be 'l2' or 'linf', got {norm!r}")
    if eps < 0 or steps < 0:
        raise ValueError(f"PGD needs eps >= 0 and steps >= 0, got eps={eps}, steps={steps}")
    if loss == "ce" and y is None:
        raise ValueError("PGD with loss='ce' needs labels y")
    step = 1.5 * eps / max(steps, 1) if step_size is None else step_size
    was_training = model.training
    model.eval()
    try:
        x = x.detach()
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1) if loss == "kl" else None
        if rand_init:
            delta = random_start(x, norm, eps, generator)
        else:
            delta = torch.zeros_like(x)
        if loss == "kl" and rand_init:
            delta = 0.001 * torch.randn(x.shape, generator=generator).to(x)  # TRADES' small Gaussian start
        if clamp is not None:
            delta = (x + delta).clamp(*clamp) - x
        for _ in range(steps):
            delta.requires_grad_(True)
            out = model(x + delta)
            if loss == "ce":
                obj = F.cross_entropy(out, y, reduction="sum")
            else:
                obj = F.kl_div(F.log_softmax(out, dim=1), p_clean, reduction="sum")
            (g,) = torch.autograd.grad(obj, delta)
            with torch.no_grad():
                delta = delta + step * (g.sign() if norm == "linf" else g / _flat_norm(g))
                delta = project(delta, norm, eps)
                if clamp is not None:
                    delta = (x + delta).clamp(*clamp) - x
        return (x + delta).detach()
    finally:
        model.train(was_training)
