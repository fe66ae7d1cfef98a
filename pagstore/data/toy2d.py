"""The ``toy2d`` reader: the paper's 2-D synthetic data (Ganz et al. 2023, Appendix G.1).

Two classes, each a mixture of three Gaussian modes on the line x2 = 2 x1: x1 ~ N(c, 1), x2 = 2 x1, with
centres {-50, -10, 30} for class 0 and {-30, 10, 50} for class 1. The paper uses 1000 points per mode
(6000 train) and a balanced 600-point test set from the same distribution (100 per mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pagstore.data.prepared import PreparedSplit

CENTRES = {0: (-50.0, -10.0, 30.0), 1: (-30.0, 10.0, 50.0)}
MODES = sum(len(c) for c in CENTRES.values())


@dataclass(frozen=True)
class Toy2dOptions:
    """seed; points_per_mode in the train split; test_size: total test points, a multiple of 6 (balanced)."""

    seed: int = 0
    points_per_mode: int = 1000
    test_size: int = 600

    def validate(self) -> None:
        if self.points_per_mode < 1:
            raise ValueError(f"points_per_mode must be >= 1, got {self.points_per_mode}")
        if self.test_size < MODES or self.test_size % MODES:
            raise ValueError(f"test_size must be a positive multiple of {MODES} (balanced modes), got {self.test_size}")


def sample_toy2d(rng: np.random.Generator, per_mode: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``per_mode`` points from each of the six modes, shuffled. Returns x float32 (N, 2), y int64 (N,)."""
    xs, ys = [], []
    for label, centres in CENTRES.items():
        for c in centres:
            x1 = rng.normal(c, 1.0, size=per_mode)
            xs.append(np.stack([x1, 2.0 * x1], axis=1))
            ys.append(np.full(per_mode, label, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


def read(opts: Toy2dOptions, base_dir: Path) -> dict[str, PreparedSplit]:
    """Generate the train and test splits; independent seeded streams so test does not depend on train size."""
    splits = {}
    for k, (split, per_mode) in enumerate((("train", opts.points_per_mode), ("test", opts.test_size // MODES))):
        x, y = sample_toy2d(np.random.default_rng([opts.seed, k]), per_mode)
        meta = {
            "dataset": "toy2d",
            "split": split,
            "source": "Ganz et al. 2023, Appendix G.1 (generated)",
            "centres": {str(k_): list(v) for k_, v in CENTRES.items()},
            "points_per_mode": per_mode,
            "seed": opts.seed,
            "pixel_space": "raw",
        }
        splits[split] = PreparedSplit(x, y, ("0", "1"), meta)
    return splits
