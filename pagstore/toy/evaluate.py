"""Metrics of a toy classifier: clean and L2-PGD accuracy, and how aligned its input-gradient is with the data line."""

from __future__ import annotations

import torch
from torch import nn

from pagstore.evaluation.pgd import pgd_attack
from pagstore.toy.config import ToyAttack

# Every toy sample lies on x2 = 2 x1: the data manifold's direction, unit length.
LINE = torch.tensor([1.0, 2.0]) / 5.0**0.5


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Percent of ``x`` (N, 2) classified as ``y`` (N,)."""
    model.eval()
    return 100.0 * float((model(x).argmax(dim=1) == y).float().mean())


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: ToyAttack, seed: int) -> float:
    """Percent of ``x`` (N, 2) still classified as ``y`` after L2 PGD (unclamped; seeded random start).

    Like foolbox, a point misclassified before the attack counts as broken, and the last PGD iterate is scored.
    """
    model.eval()
    x_adv = pgd_attack(
        model, x, y, norm="L2", eps=attack.eps, steps=attack.steps, step_size=attack.step_size,
        clip=None, random_start=attack.random_start, seed=seed,
    )
    return accuracy(model, x_adv, y)


@torch.no_grad()
def grid_robust_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, angles: int = 180, radii: int = 30
) -> float:
    """Percent of ``x`` (N, 2) whose whole L2 disk of radius ``eps`` (a polar grid) is classified ``y`` (N,).

    In 2-D the disk can be searched instead of attacked, so this does not depend on PGD finding the
    boundary. The grid has ``angles`` directions and ``radii`` rings up to eps; a region thinner than the
    grid spacing (eps / radii radially, 2 pi eps / angles at the rim) can be missed, so it is an upper bound
    on the true robust accuracy, normally far tighter than an attack's.
    """
    if angles < 1 or radii < 1:
        raise ValueError(f"grid needs angles >= 1 and radii >= 1, got {angles}, {radii}")
    model.eval()
    theta = torch.arange(angles, dtype=torch.float32) * (2 * torch.pi / angles)
    rings = torch.linspace(eps / radii, eps, radii)
    ring_points = rings.view(-1, 1, 1) * torch.stack([theta.cos(), theta.sin()], 1)  # (radii, angles, 2)
    offsets = torch.cat([torch.zeros(1, 2), ring_points.reshape(-1, 2)])  # the centre too: clean accuracy
    safe = []
    for start in range(0, len(x), 32):  # 32 points x (1 + angles * radii) grid points per forward
        xb, yb = x[start : start + 32], y[start : start + 32]
        pred = model((xb.unsqueeze(1) + offsets.to(xb)).reshape(-1, 2)).argmax(dim=1).view(len(xb), -1)
        safe.append((pred == yb.view(-1, 1)).all(dim=1))
    return 100.0 * float(torch.cat(safe).float().mean())


def line_alignment(model: nn.Module, x: torch.Tensor) -> float:
    """Mean |cos| between the logit-margin gradient grad_x (z_1 - z_0) and the data line, over ``x`` (N, 2).

    1 means the decision function changes only along the data manifold (boundaries cross the line at right
    angles, what NN gradients ask for); 0 means it changes only off the manifold. The margin is used instead
    of log p(y|x) because log-softmax saturates far from the boundary and its gradient underflows.
    """
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"line_alignment needs (N, 2) points, got {tuple(x.shape)}")
    model.eval()
    xr = x.detach().clone().requires_grad_(True)
    logits = model(xr)
    (g,) = torch.autograd.grad((logits[:, 1] - logits[:, 0]).sum(), xr)
    cos = (g @ LINE.to(g)) / g.norm(dim=1).clamp_min(1e-30)
    return float(cos.abs().mean())
