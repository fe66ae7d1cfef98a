"""Projected gradient descent (L2 / Linf), untargeted or targeted, with an optional box constraint.

Used for the qualitative PAG check (large-eps targeted attacks toward every class, the paper's Fig. 5/9/11),
as a cheap robustness probe, and for vector data (toy 2-D) where AutoAttack's [0, 1] box and image-shaped
Square attack do not apply: pass ``clip=None`` there.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["L2", "Linf"]
NORMS = ("L2", "Linf")


def perturbation_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm of ``delta`` (B, *S) -> (B,)."""
    flat = delta.reshape(delta.shape[0], -1)
    if norm == "L2":
        return flat.norm(p=2, dim=1)
    if norm == "Linf":
        return flat.abs().amax(dim=1)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project each perturbation in ``delta`` (B, *S) onto the ``norm`` ball of radius ``eps``."""
    if norm == "Linf":
        return delta.clamp(-eps, eps)
    norms = perturbation_norms(delta, norm).clamp_min(1e-12)
    scale = (eps / norms).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


def _ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return grad.sign()
    norms = perturbation_norms(grad, "L2").clamp_min(1e-12)
    return grad / norms.view(-1, *([1] * (grad.dim() - 1)))


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    targeted: bool = False,
    clip: tuple[float, float] | None = (0.0, 1.0),
    random_start: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Run PGD on cross-entropy and return the adversarial inputs.

    Args:
        model: maps (B, *S) model-space inputs to logits (B, C); used in eval mode by the caller.
        x: clean inputs (B, *S).
        y: (B,) int64; the true labels (untargeted: CE is maximised) or the targets (targeted: minimised).
        norm: "L2" or "Linf"; eps: radius of the ball; steps, step_size: the iteration schedule.
        clip: box the inputs live in ([0, 1] for images), or None for unbounded vector data.
        random_start: start from a uniform point of the Linf ball / a random L2 direction (seeded).

    Returns:
        x_adv (B, *S), detached, with ``perturbation_norms(x_adv - x) <= eps`` and inside ``clip``.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if eps < 0 or steps < 0 or step_size < 0:
        raise ValueError(f"eps, steps and step_size must be >= 0, got {eps}, {steps}, {step_size}")
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start and eps > 0:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        if norm == "Linf":
            delta = ((torch.rand(x.shape, generator=gen) * 2 - 1) * eps).to(x)
        else:
            direction = _ascent_direction(torch.randn(x.shape, generator=gen), "L2")
            radius = eps * torch.rand(x.shape[0], generator=gen).view(-1, *([1] * (x.dim() - 1)))
            delta = (direction * radius).to(x)
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        delta.requires_grad_(True)
        x_in = x + delta
        if clip is not None:
            x_in = x_in.clamp(*clip)
        loss = F.cross_entropy(model(x_in), y, reduction="sum")
        (grad,) = torch.autograd.grad(sign * loss, delta)
        with torch.no_grad():
            delta = project(delta + step_size * _ascent_direction(grad, norm), norm, eps)
            if clip is not None:
                # Keep x + delta inside the box so the returned point is the one that was scored.
                delta = (x + delta).clamp(*clip) - x
        delta = delta.detach()
    x_adv = x + delta
    return (x_adv.clamp(*clip) if clip is not None else x_adv).detach()
