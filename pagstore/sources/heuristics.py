"""The paper's heuristic gradient sources (Section 4.1): g(x, y) = r_y(x) - x toward a class representative.

- OI (one image): r_y is one fixed training image of class y, chosen with a seeded generator.
- CM (class mean): r_y = s * mean of class y, with s rescaling the means to the mean image norm (a plain
  mean is blurry and has a smaller norm than real images; the paper multiplies by "a constant in order to
  obtain an image-like norm").
- NN (nearest neighbour, Eq. 6): r_y(x) is x's L2 nearest neighbour among a seeded subset of class y,
  never x itself. "Itself" means the same dataset index *and* any exact duplicate of x (distance 0): a
  duplicate would give a zero gradient, which has no direction and so teaches the classifier nothing.

All three work on images and on raw vectors (toy2d): they only flatten samples to (N, D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pagstore.data.prepared import PreparedSplit
from pagstore.sources.base import GradientSource, SourceError, array_digest


@dataclass(frozen=True)
class OIParams:
    """No parameters of its own: the representative is drawn with the distillation seed."""


@dataclass(frozen=True)
class CMParams:
    """``scale_to_image_norm``: multiply class means by s = mean image norm / mean class-mean norm."""

    scale_to_image_norm: bool = True


@dataclass(frozen=True)
class NNParams:
    """``subset_size``: candidates drawn per class (seeded); 0 = the whole class."""

    subset_size: int = 1000

    def validate(self) -> None:
        if self.subset_size < 0:
            raise ValueError(f"subset_size must be >= 0 (0 = whole class), got {self.subset_size}")


def _class_members(split: PreparedSplit, source: str) -> list[np.ndarray]:
    """Training indices of each class; an empty class is an error (it would have no representative)."""
    members = [np.flatnonzero(split.labels == c) for c in range(split.num_classes)]
    for c, m in enumerate(members):
        if m.size == 0:
            raise SourceError(
                f"source '{source}': class {c} ('{split.class_names[c]}') has no training sample, "
                "so it has no representative"
            )
    return members


class _RepresentativeSource(GradientSource):
    """g(x, y) = r_y - x with one fixed representative per class, reps (C, *S)."""

    def __init__(self, reps: torch.Tensor) -> None:
        super().__init__(reps.shape[0], tuple(reps.shape[1:]))
        self.reps = reps.float().contiguous()

    def _compute(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.reps.unsqueeze(0) - x.unsqueeze(1)


class OneImageSource(_RepresentativeSource):
    """OI: r_y = one seeded-random training image of class y (the same for every x)."""

    name = "oi"

    def __init__(self, params: OIParams, train: PreparedSplit, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 0x01])
        self.chosen = np.array([int(rng.choice(m)) for m in _class_members(train, self.name)], dtype=np.int64)
        self.train_fingerprint = train.fingerprint()
        self.seed = seed
        super().__init__(torch.from_numpy(train.as_float(self.chosen)))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "representative_indices": self.chosen.tolist(),
            "train_fingerprint": self.train_fingerprint,
        }


class ClassMeanSource(_RepresentativeSource):
    """CM: r_y = s * mean of the class-y training samples."""

    name = "cm"

    def __init__(self, params: CMParams, train: PreparedSplit, seed: int = 0) -> None:
        x = torch.from_numpy(train.as_float()).double()
        flat = x.reshape(x.shape[0], -1)
        members = _class_members(train, self.name)
        means = torch.stack([flat[torch.from_numpy(m)].mean(0) for m in members])
        self.scale = 1.0
        if params.scale_to_image_norm:
            mean_norm = float(flat.norm(dim=1).mean())
            mean_mean_norm = float(means.norm(dim=1).mean())
            if mean_mean_norm == 0.0:
                raise SourceError(f"source '{self.name}': every class mean is zero, cannot rescale to image norm")
            self.scale = mean_norm / mean_mean_norm
        self.means = means.float().reshape(len(members), *x.shape[1:])
        self.params = params
        self.train_fingerprint = train.fingerprint()
        super().__init__(self.means * self.scale)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale_to_image_norm": self.params.scale_to_image_norm,
            "scale": self.scale,
            "class_means_digest": array_digest(self.means),
            "train_fingerprint": self.train_fingerprint,
        }


class NearestNeighbourSource(GradientSource):
    """NN: r_y(x) = argmin over a seeded subset of class y of ||x_hat - x||_2, x_hat != x (Eq. 6)."""

    name = "nn"

    def __init__(self, params: NNParams, train: PreparedSplit, seed: int = 0) -> None:
        super().__init__(train.num_classes, train.sample_shape)
        rng = np.random.default_rng([seed, 0x03])
        self.subsets: list[np.ndarray] = []
        for m in _class_members(train, self.name):
            k = m.size if params.subset_size == 0 else min(params.subset_size, m.size)
            self.subsets.append(np.sort(rng.choice(m, size=k, replace=False)).astype(np.int64))
        # float64 candidates: distances are exact enough that "distance 0" really means a duplicate.
        self.candidates = [torch.from_numpy(train.as_float(s)).double().reshape(len(s), -1) for s in self.subsets]
        self.params = params
        self.seed = seed
        self.train_fingerprint = train.fingerprint()

    def neighbours(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Training indices of the chosen neighbour per (sample, class): int64 (B, C)."""
        q = x.double().reshape(x.shape[0], -1)
        out = torch.empty(x.shape[0], self.num_classes, dtype=torch.int64)
        for c, (cand, ids) in enumerate(zip(self.candidates, self.subsets)):
            # Direct differences (no ||a||^2 - 2ab + ||b||^2 expansion): exact zeros for duplicates.
            d = torch.cdist(q, cand, compute_mode="donot_use_mm_for_euclid_dist")
            ids_t = torch.from_numpy(ids)
            d[(ids_t.unsqueeze(0) == indices.unsqueeze(1)) | (d == 0)] = float("inf")
            best = d.argmin(dim=1)
            if torch.isinf(d.gather(1, best.unsqueeze(1))).any():
                bad = int(indices[torch.isinf(d.gather(1, best.unsqueeze(1))).squeeze(1)][0])
                raise SourceError(
                    f"source 'nn': sample {bad} has no candidate of class {c} other than itself or an exact "
                    f"duplicate (class subset has {len(ids)} sample(s)); increase subset_size"
                )
            out[:, c] = ids_t[best]
        return out

    def _compute(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        nb = self.neighbours(x, indices)
        reps = torch.empty(x.shape[0], self.num_classes, x[0].numel(), dtype=torch.float64)
        for c, (cand, ids) in enumerate(zip(self.candidates, self.subsets)):
            pos = np.searchsorted(ids, nb[:, c].numpy())
            reps[:, c] = cand[torch.from_numpy(pos)]
        return (reps.float().reshape(x.shape[0], self.num_classes, *x.shape[1:])) - x.unsqueeze(1)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "subset_size": self.params.subset_size,
            "subset_sizes": [int(len(s)) for s in self.subsets],
            "subset_digest": array_digest(*self.subsets),
            "excludes": "same dataset index and exact duplicates (L2 distance 0)",
            "train_fingerprint": self.train_fingerprint,
        }
