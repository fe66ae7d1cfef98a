"""Pictures of distilled gradients: one sample and its C gradients (paper Fig. 7), and an SBG t-sweep (Fig. 8).

Gradients are directions, so each panel is scaled on its own: 0.5 grey is zero, the largest absolute
value of that gradient maps to black or white.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pagstore.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _as_picture(a: np.ndarray, signed: bool) -> np.ndarray:
    """(ch, H, W) -> (H, W) or (H, W, 3) in [0, 1]; signed arrays are centred on grey."""
    a = a.astype(np.float32)
    if signed:
        m = float(np.abs(a).max())
        a = 0.5 + 0.5 * a / m if m > 0 else np.full_like(a, 0.5)
    a = np.clip(a, 0.0, 1.0)
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def _save(fig, path: str | Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    _pyplot().close(fig)


def gradient_grid(
    images: np.ndarray,
    grads: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str,
    row_labels: Sequence[str] | None = None,
) -> None:
    """Rows of [image, g(x, 0), ..., g(x, C-1)].

    Args:
        images: float (R, ch, H, W) in [0, 1].
        grads: (R, C, ch, H, W).
    """
    plt = _pyplot()
    rows, c = grads.shape[0], grads.shape[1]
    fig, axes = plt.subplots(rows, c + 1, figsize=(1.0 * (c + 1), 1.0 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for r in range(rows):
        cmap = "gray" if images.shape[1] == 1 else None
        axes[r, 0].imshow(_as_picture(images[r], signed=False), cmap=cmap, vmin=0, vmax=1)
        axes[r, 0].set_ylabel(row_labels[r] if row_labels else "", fontsize=7)
        for k in range(c):
            axes[r, k + 1].imshow(_as_picture(grads[r, k], signed=True), cmap=cmap, vmin=0, vmax=1)
            if r == 0:
                axes[r, k + 1].set_title(str(class_names[k])[:10], fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def vector_field(points: np.ndarray, labels: np.ndarray, grads: np.ndarray, path: str | Path, title: str) -> None:
    """2-D data: the points coloured by class and, per class, unit arrows of g(x, c). grads (N, C, 2)."""
    plt = _pyplot()
    c = grads.shape[1]
    fig, axes = plt.subplots(1, c, figsize=(3.2 * c, 3.4), squeeze=False, layout="constrained")
    unit = grads / np.maximum(np.linalg.norm(grads, axis=-1, keepdims=True), 1e-12)
    for k in range(c):
        ax = axes[0, k]
        ax.scatter(points[:, 0], points[:, 1], c=labels, s=6, cmap="coolwarm")
        ax.quiver(points[:, 0], points[:, 1], unit[:, k, 0], unit[:, k, 1], angles="xy", width=0.004)
        ax.set_title(f"g(x, {k})", fontsize=8)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def t_sweep(
    images: np.ndarray, grads_by_t: Mapping[int, np.ndarray], class_names: Sequence[str], path: str | Path
) -> None:
    """For each image and each t, a row [image, g_t(x, 0..C-1)]. images (n, ch, H, W); grads (n, C, ch, H, W)."""
    ts = sorted(grads_by_t)
    rows_img = np.concatenate([images[i : i + 1] for i in range(len(images)) for _ in ts])
    rows_grad = np.concatenate([grads_by_t[t][i : i + 1] for i in range(len(images)) for t in ts])
    labels = [f"t={t}" for _ in range(len(images)) for t in ts]
    gradient_grid(rows_img, rows_grad, class_names, path, "SBG gradients for several noise levels t", labels)
