"""Robust accuracy as a function of eps, with single-restart APGD-CE (cheaper than full AutoAttack).

One AutoAttack number per norm says little about *how* a model degrades; the paper's robustness claims
are easier to read as curves. APGD-CE from pyautoattack (the first attack of AutoAttack) is run once per
(norm, eps); accuracy at eps = 0 is the clean accuracy.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pagstore.atomic import atomic_path
from pagstore.evaluation.pgd import NORMS, perturbation_norms

CSV_FIELDS = ("norm", "eps", "accuracy", "num_images")


@dataclass(frozen=True)
class SweepPoint:
    """Accuracy of the model under APGD-CE at one (norm, eps)."""

    norm: str
    eps: float
    accuracy: float
    num_images: int


def apgd_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float,
                  n_iter: int = 50, seed: int = 0, device: str = "cpu") -> float:
    """Accuracy on x (N, ch, H, W) in [0, 1], y (N,) under APGD-CE at radius ``eps`` (0 -> clean accuracy)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    with torch.no_grad():
        correct = model(x.to(device)).argmax(1).cpu() == y
    if eps <= 0 or not correct.any():
        return correct.float().mean().item()
    from pyautoattack.autopgd_base import APGDAttack  # lazy: keep `import pagstore` light

    attack = APGDAttack(model, n_iter=n_iter, norm=norm, eps=float(eps), seed=seed, loss="ce", device=device)
    idx = torch.nonzero(correct).flatten()
    x_adv = attack.perturb(x[idx].to(device), y[idx].to(device)).cpu()
    if perturbation_norms(x_adv - x[idx], norm).max().item() > eps * (1 + 1e-4) + 1e-4:
        raise RuntimeError(f"APGD {norm} returned a perturbation larger than eps {eps}")
    with torch.no_grad():
        still = model(x_adv.to(device)).argmax(1).cpu() == y[idx]
    return still.float().sum().item() / len(y)


def robust_accuracy_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          eps_by_norm: dict[str, list[float]], *, n_iter: int = 50, seed: int = 0,
                          device: str = "cpu") -> list[SweepPoint]:
    """APGD-CE accuracy for every eps of every norm in ``eps_by_norm`` (e.g. {"L2": [0, .25, .5]})."""
    points = []
    for norm, eps_list in eps_by_norm.items():
        for eps in sorted(eps_list):
            acc = apgd_accuracy(model, x, y, norm=norm, eps=eps, n_iter=n_iter, seed=seed, device=device)
            points.append(SweepPoint(norm=norm, eps=float(eps), accuracy=acc, num_images=len(y)))
    return points


def write_sweep_csv(points: list[SweepPoint], path: str | Path) -> None:
    """Write the curve as CSV with columns norm, eps, accuracy, num_images (DVC plots read it)."""
    with atomic_path(path, suffix=".csv") as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for p in points:
            writer.writerow({"norm": p.norm, "eps": f"{p.eps:.6g}", "accuracy": f"{p.accuracy:.6f}",
                             "num_images": p.num_images})


def plot_sweep(points: list[SweepPoint], path: str | Path, title: str = "") -> None:
    """One panel per norm: accuracy (%) vs eps. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norms = sorted({p.norm for p in points})
    fig, axes = plt.subplots(1, max(len(norms), 1), figsize=(4 * max(len(norms), 1), 3.2), squeeze=False)
    for ax, norm in zip(axes[0], norms):
        pts = [p for p in points if p.norm == norm]
        ax.plot([p.eps for p in pts], [100 * p.accuracy for p in pts], marker="o")
        ax.set_xlabel(f"eps ({norm})")
        ax.set_ylabel("APGD-CE accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
