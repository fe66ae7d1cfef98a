"""Control methods for PAG (issue 16): what separates "aligned to perceptual gradients" from "regularised".

- ``targets: random``: PAG against Gaussian directions, fixed per store row (seeded by (seed, row)), so
  the classifier is asked to align with a consistent but meaningless target.
- ``targets: shuffled``: PAG against another image's stored gradients for the same class index, through
  a fixed seeded permutation within each class (a cyclic shift of a shuffled class list, so no image
  keeps its own gradients when its class has two images or more).
- ``objective: gradnorm``: CE + lam * mean_i ||grad_x CE_i||^2 (double backprop, Drucker & LeCun), the
  plain input-gradient-norm penalty the off-manifold paper predicts to be enough for PAG.

Both target controls read the whole store into memory (digits: 1,347 x 10 x 256 float16 = 7 MB) and batch
it with the same seeded shuffle as the store-free methods; the gradients in a batch are transformed by
row index, so they do not depend on batch size or order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pagstore.training.data import Batch

TARGETS = ("store", "random", "shuffled")


def within_class_permutation(labels: np.ndarray, seed: int) -> np.ndarray:
    """perm (N,) with labels[perm] == labels and perm[i] != i wherever i's class has >= 2 members."""
    labels = np.asarray(labels)
    perm = np.arange(len(labels))
    rng = np.random.default_rng([seed, 0x5B])
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        perm[members] = np.roll(members, -1)
    return perm


def random_targets(rows: np.ndarray, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal targets (len(rows), *shape), each fixed by (seed, row) alone."""
    out = torch.empty((len(rows), *shape))
    for i, r in enumerate(np.asarray(rows).tolist()):
        state = np.random.SeedSequence([int(seed), 0xA11, int(r)]).generate_state(1, np.uint64)[0]
        out[i] = torch.randn(shape, generator=torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF))
    return out


class ControlTargets:
    """The store in memory with its gradients replaced as ``kind`` says ("random" or "shuffled")."""

    def __init__(self, store_path: str | Path, kind: str, seed: int) -> None:
        if kind not in TARGETS[1:]:
            raise ValueError(f"control targets must be one of {list(TARGETS[1:])}, got {kind!r}")
        from pagstore.store import open_store

        store = open_store(str(store_path), mode="r")
        images, labels, grads = store.read(np.arange(store.num_samples))
        self.x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
        self.y = np.asarray(labels, dtype=np.int64)
        self.kind, self.seed = kind, seed
        self.grads = np.asarray(grads) if kind == "shuffled" else None
        self.perm = within_class_permutation(self.y, seed) if kind == "shuffled" else None
        self.grad_shape = tuple(grads.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def targets(self, rows: np.ndarray) -> torch.Tensor:
        """(len(rows), C, *S) float32 control targets of store rows ``rows``."""
        if self.kind == "shuffled":
            return torch.from_numpy(self.grads[self.perm[rows]].astype(np.float32))
        return random_targets(rows, self.grad_shape, self.seed)

    def batches(self, batch_size: int, *, seed: int, epoch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[Batch]:
        """(x (B, *S), y (B,), targets (B, C, *S)), shuffled by (seed, epoch), strided over ranks."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self))[rank::world_size]
        for start in range(0, len(order), batch_size):
            rows = np.sort(order[start:start + batch_size])
            yield torch.from_numpy(self.x[rows]), torch.from_numpy(self.y[rows]), self.targets(rows)


def grad_norm_penalty(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      augment=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean_i ||grad_x CE(model(aug(x_i)), y_i)||^2 with graph, logits (B, C)); x (B, *S) un-augmented."""
    leaf = x.detach().requires_grad_(True)
    logits = model(augment(leaf) if augment is not None else leaf)
    ce = F.cross_entropy(logits, y, reduction="sum")
    (g,) = torch.autograd.grad(ce, leaf, create_graph=True)
    return g.flatten(1).pow(2).sum(1).mean(), logits


def input_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Mean ||grad_x CE(model(x_i), y_i)|| over held-out images (B, *S): what gradnorm's lam is matched on."""
    model = model.eval()
    norms = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xb), y[i:i + batch_size], reduction="sum"), xb)
        norms.append(g.flatten(1).norm(dim=1))
    return float(torch.cat(norms).mean())
