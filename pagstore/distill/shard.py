"""One unit of distillation work: compute and write one whole store shard.

Tasks own whole shards (concurrent partial writes to a zarr shard lose data) and the store marks a shard
done only after it is written, so a killed run loses at most the shards in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


import numpy as np

from pagstore.sources.base import GradientSource


@dataclass(frozen=True)
class ShardWork:
    """The inputs of shard ``k``: stored samples (uint8 images or float32 vectors), labels, dataset indices and,
    for a K-of-C store, the (n, K) target classes of each sample (None: all C)."""

    k: int
    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    classes: np.ndarray | None = None


def model_space(images: np.ndarray) -> np.ndarray:
    """uint8 (n, ch, H, W) -> float32 [0, 1]; float32 vectors unchanged."""
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)


def compute_grads(source: GradientSource, work: ShardWork, batch_size: int, grad_dtype: str) -> np.ndarray:
    """Gradients of one shard, (n, K, *S) in ``grad_dtype`` (K = C without ``work.classes``), computed
    ``batch_size`` samples at a time; only the K classes are computed."""
    x = model_space(work.images)
    k = source.num_classes if work.classes is None else work.classes.shape[1]
    out = np.empty((len(x), k, *x.shape[1:]), dtype=np.dtype(grad_dtype))
    for start in range(0, len(x), batch_size):
        sl = slice(start, start + batch_size)
        cl = None if work.classes is None else work.classes[sl]
        out[sl] = source.compute(x[sl], work.labels[sl], work.index[sl], cl)
    return out


def run_shard(store_path: str | Path, source: GradientSource, work: ShardWork, batch_size: int, grad_dtype: str) -> int:
    """Compute shard ``work.k`` and write it whole to the store at ``store_path``; returns k."""
    from pagstore.store import open_store  # imports zarr; keep this module light

    grads = compute_grads(source, work, batch_size, grad_dtype)
    store = open_store(store_path, mode="r+")
    store.write_shard(work.k, work.images, work.labels, grads, work.index, work.classes)
    return work.k


