"""Bootstrap intervals over images and seeds, interval-based comparisons and a Spearman interval.

Robust accuracy of one method is a (seeds S, images N) matrix of 0/1 outcomes on a fixed image subset.
Its interval resamples both axes (seeds with replacement, then images with replacement: the two-stage
bootstrap), so it carries the seed-to-seed spread as well as the finite-subset error. Two methods are
called different only when their intervals do not overlap; otherwise "not distinguishable". Non-overlap
of two 95% intervals is stricter than a 5% test, on purpose: a report sentence "A beats B" must survive
a sceptical reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval (same units as the data, e.g. %)."""

    mean: float
    lo: float
    hi: float
    level: float = 0.95

    def separates_above(self, other: Interval) -> bool:
        """True when this whole interval lies above ``other``'s."""
        return self.lo > other.hi

    def fmt(self, digits: int = 1) -> str:
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def _as_matrix(outcomes: np.ndarray | list) -> np.ndarray:
    a = np.asarray(outcomes, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"outcomes must be (seeds, images) with both >= 1, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("outcomes contain NaN or inf")
    return a


def bootstrap_mean(outcomes: np.ndarray | list, *, n_boot: int = 2000, level: float = 0.95,
                   seed: int = 0, scale: float = 1.0) -> Interval:
    """Mean of ``outcomes`` (S, N) (or (N,)) with a two-stage bootstrap interval over seeds and images.

    Args:
        outcomes: per seed and image values (1 = robust, 0 = broken; any real values work).
        scale: multiply the result (100 for percent).
    """
    a = _as_matrix(outcomes)
    s, n = a.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, s, size=(n_boot, s))
    images = rng.integers(0, n, size=(n_boot, n))
    # mean over resampled seeds of the mean over resampled images: per-seed image sums via a gather
    per_seed_img_mean = np.stack([a[:, images[b]].mean(axis=1) for b in range(n_boot)])  # (n_boot, S)
    boots = np.take_along_axis(per_seed_img_mean, seeds, axis=1).mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return Interval(float(a.mean()) * scale, float(lo) * scale, float(hi) * scale, level)


def compare(name_a: str, a: Interval, name_b: str, b: Interval) -> str:
    """"A beats B" / "B beats A" when the intervals separate, else "A and B are not distinguishable"."""
    if a.separates_above(b):
        return f"{name_a} beats {name_b}"
    if b.separates_above(a):
        return f"{name_b} beats {name_a}"
    return f"{name_a} and {name_b} are not distinguishable"


def spearman(x: np.ndarray | list, y: np.ndarray | list) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import rankdata

    xr, yr = rankdata(np.asarray(x, float)), rankdata(np.asarray(y, float))
    if xr.std() == 0 or yr.std() == 0:
        return float("nan")
    return float(np.corrcoef(xr, yr)[0, 1])


def spearman_interval(x: np.ndarray | list, y: np.ndarray | list, *, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0) -> Interval:
    """Spearman correlation of paired values (one pair per model and seed) with a pair-bootstrap interval.

    Resamples with a constant side (possible with few pairs) are dropped from the interval.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"need two equal-length 1-D arrays of >= 3 pairs, got {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    boots = np.array([spearman(x[i], y[i]) for i in rng.integers(0, len(x), size=(n_boot, len(x)))])
    boots = boots[np.isfinite(boots)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha]) if len(boots) else (float("nan"), float("nan"))
    return Interval(spearman(x, y), float(lo), float(hi), level)
