"""The qualitative PAG check as pictures: large-eps targeted PGD from test images toward every class.

``targeted_grid`` builds the paper's Fig. 9/11 layout (rows = images, columns = the original followed by
the image pushed toward each class); ``lambda_sweep_grid`` builds Fig. 5 (rows = models trained with
different lambdas, one image, columns = original + each class). A model has PAG when the pushed images
show features of the target class instead of noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pagstore.atomic import atomic_path
from pagstore.evaluation.pgd import pgd_attack


@dataclass(frozen=True)
class TargetedAttack:
    """Large-eps targeted PGD settings (model-space units)."""

    norm: str = "L2"
    eps: float = 4.0
    steps: int = 40
    step_size: float = 0.2


def targeted_grid(model: nn.Module, x: torch.Tensor, num_classes: int, attack: TargetedAttack) -> torch.Tensor:
    """(n, ch, H, W) images -> (n, 1 + C, ch, H, W): each image, then it attacked toward class 0..C-1."""
    n = x.shape[0]
    rows = x.repeat_interleave(num_classes, dim=0)
    targets = torch.arange(num_classes).repeat(n)
    adv = pgd_attack(model, rows, targets, norm=attack.norm, eps=attack.eps, steps=attack.steps,
                     step_size=attack.step_size, targeted=True)
    return torch.cat([x.unsqueeze(1), adv.view(n, num_classes, *x.shape[1:])], dim=1)


def lambda_sweep_grid(models: Sequence[nn.Module], x: torch.Tensor, num_classes: int,
                      attack: TargetedAttack) -> torch.Tensor:
    """One image x (1, ch, H, W), several models -> (len(models), 1 + C, ch, H, W), row i from model i."""
    if x.shape[0] != 1:
        raise ValueError(f"lambda_sweep_grid takes one image (1, ch, H, W), got {tuple(x.shape)}")
    return torch.cat([targeted_grid(m, x, num_classes, attack) for m in models], dim=0)


def save_grid(grid: torch.Tensor, path: str | Path, *, col_labels: Sequence[str],
              row_labels: Sequence[str] = (), title: str = "") -> None:
    """Draw a (rows, cols, ch, H, W) grid of [0, 1] images as PNG (grey for ch = 1), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = grid.shape[:2]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.1 * n_cols + 0.8, 1.1 * n_rows + 0.5), squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            img = grid[r, c].detach().clamp(0, 1).cpu()
            ax = axes[r][c]
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img.permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def class_columns(class_names: Sequence[str]) -> list[str]:
    """Column labels of a targeted grid: "input" then one per target class."""
    return ["input", *[f"-> {c}" for c in class_names]]
