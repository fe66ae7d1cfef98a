"""Which target classes a v2 store holds per sample (the K-of-C layout), chosen at distill time.

K = C: every sample stores all classes in class order 0..C-1 (format v1's meaning: grads[i, c] is class c).
K < C: the true class first, then K - 1 other classes drawn without replacement by a generator seeded with
(seed, dataset index) only, so a sample's classes do not depend on sharding, batching or workers.
"""

from __future__ import annotations

import numpy as np


def choose_classes(labels: np.ndarray, index: np.ndarray, num_classes: int, k: int, seed: int) -> np.ndarray:
    """int64 (n, K) target classes for samples with true ``labels`` (n,) and dataset ``index`` (n,)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not 1 <= k <= num_classes:
        raise ValueError(f"num_target_classes must be in [1, {num_classes}], got {k}")
    if k == num_classes:
        return np.broadcast_to(np.arange(num_classes, dtype=np.int64), (len(labels), k)).copy()
    out = np.empty((len(labels), k), dtype=np.int64)
    for i, (y, ix) in enumerate(zip(labels.tolist(), np.asarray(index).tolist())):
        others = np.random.default_rng([int(seed), int(ix)]).permutation(num_classes - 1)[: k - 1]
        out[i, 0] = y
        out[i, 1:] = others + (others >= y)  # skip the true class
    return out


def selection(num_classes: int, k: int | None, seed: int) -> dict:
    """The spec's ``class_selection`` record for K of C classes."""
    if k is None or k == num_classes:
        return {"method": "all"}
    return {"method": "true-first", "seed": int(seed)}
