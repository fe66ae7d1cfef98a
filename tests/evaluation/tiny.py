"""Tiny classifiers and data for the evaluation tests (seconds on one CPU thread)."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pagstore.data.prepared import PreparedSplit

NUM_CLASSES = 4
SHAPE = (1, 8, 8)


def prototypes() -> torch.Tensor:
    """One bright 4x4 quadrant per class: (C, 1, 8, 8) in [0, 1]."""
    # Contrast 0.4 over 16 pixels: classes 1.6 apart in L2 (0.4 in Linf), so moderate budgets break them.
    protos = torch.full((NUM_CLASSES, *SHAPE), 0.3)
    for c in range(NUM_CLASSES):
        r, q = divmod(c, 2)
        protos[c, 0, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] = 0.7
    return protos


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy class prototypes: x (n, 1, 8, 8) in [0, 1], y (n,) int64 balanced over the classes."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % NUM_CLASSES
    x = prototypes()[y] + 0.08 * torch.randn((n, *SHAPE), generator=gen)
    return x.clamp(0, 1), y


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, NUM_CLASSES))


@functools.lru_cache(maxsize=4)
def trained_cnn(seed: int = 0, steps: int = 40) -> nn.Module:
    """A tiny CNN trained (plain cross-entropy) to ~100% on the prototype data (cached: do not modify it)."""
    model = tiny_cnn(seed)
    x, y = make_data(128, seed=seed + 100)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def make_split(n: int, seed: int = 0) -> PreparedSplit:
    """A PreparedSplit (uint8 images) of the prototype data."""
    x, y = make_data(n, seed)
    images = np.rint(x.numpy() * 255).astype(np.uint8)
    return PreparedSplit(images, y.numpy().astype(np.int64), tuple(f"c{i}" for i in range(NUM_CLASSES)),
                         {"dataset": "tiny"})
