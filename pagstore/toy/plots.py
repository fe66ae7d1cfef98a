"""Decision-boundary picture of the toy experiment (the paper's Figure 4)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pagstore.atomic import atomic_path


@torch.no_grad()
def predict_grid(model: nn.Module, xlim: tuple[float, float], ylim: tuple[float, float], steps: int = 300):
    """Class predictions of ``model`` on a ``steps`` x ``steps`` grid.

    Returns:
        (xx, yy, pred): two (steps, steps) coordinate arrays and the (steps, steps) int predicted class.
    """
    xs = np.linspace(*xlim, steps, dtype=np.float32)
    ys = np.linspace(*ylim, steps, dtype=np.float32)
    xx, yy = np.meshgrid(xs, ys)
    points = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1))
    model.eval()
    pred = model(points).argmax(dim=1).numpy().reshape(xx.shape)
    return xx, yy, pred


def plot_decision_boundaries(
    models: Mapping[str, nn.Module],
    x_test: np.ndarray,
    y_test: np.ndarray,
    path: str | Path,
    subtitles: Mapping[str, str] | None = None,
    eps: float | None = None,
) -> None:
    """Save one panel per model: predicted class as background, test points on top (PNG at ``path``).

    Axes have equal scales, so L2 distances (the threat model) look as they are.

    Args:
        models: title -> classifier taking (B, 2) float32 points.
        x_test: (N, 2) float32 test points; y_test: (N,) int labels.
        subtitles: title -> a line or two under it.
        eps: if given, a dashed circle of this radius in the lower right corner shows the attack budget.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    pad = 15.0
    xlim = (float(x_test[:, 0].min() - pad), float(x_test[:, 0].max() + pad))
    ylim = (float(x_test[:, 1].min() - 2 * pad), float(x_test[:, 1].max() + 2 * pad))
    aspect = (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 1.2 + 3.6 * aspect), squeeze=False)
    background = ListedColormap(["#f4c7a1", "#a9c8ec"])
    for ax, (title, model) in zip(axes[0], models.items()):
        xx, yy, pred = predict_grid(model, xlim, ylim)
        ax.contourf(xx, yy, pred, levels=[-0.5, 0.5, 1.5], cmap=background)
        for cls, colour in ((0, "#c0392b"), (1, "#1f4e9c")):
            pts = x_test[y_test == cls]
            ax.scatter(pts[:, 0], pts[:, 1], s=6, c=colour, label=f"class {cls}")
        label = title if not subtitles or title not in subtitles else f"{title}\n{subtitles[title]}"
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        if eps:
            centre = (xlim[1] - 1.3 * eps, ylim[0] + 1.3 * eps)
            ax.add_patch(plt.Circle(centre, eps, fill=False, linestyle="--", color="black", linewidth=1))
            ax.annotate(f"L2 eps {eps:g}", (centre[0], centre[1] + 1.1 * eps), ha="center", fontsize=8)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
