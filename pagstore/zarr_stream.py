"""The shuffled training stream read from the zarr store itself, for stores without a webdataset export.

Same batches contract as :func:`pagstore.loaders.stream_batches`: (images (B, *S) float32, labels (B,) int64,
grads (B, K, *S) float32[, classes (B, K) int64]). The order is :meth:`ZarrGradientDataset.epoch_order`
(blocks of chunks in a seeded random order, samples shuffled within pairs of blocks), so each shard is
decoded about once per epoch, and a reader thread decodes ahead of the training step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pagstore.loaders import Batch, ZarrGradientDataset, _dist_info


def rank_order(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s contiguous part of ``order`` (n,), every rank the same length (ceil(n / world_size)).

    Contiguous, not strided, so each rank touches only its own blocks of chunks (a strided split would make
    every rank decode the whole store); padded with the order's first samples, as torch's DistributedSampler
    pads, so all ranks yield the same number of batches and DDP stays in step.
    """
    per = -(-len(order) // world_size)
    padded = np.concatenate([order, order[: per * world_size - len(order)]]) if len(order) else order
    return padded[rank * per:(rank + 1) * per]


def zarr_stream_batches(store_path: str | Path, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
                        rank: int | None = None, world_size: int | None = None, num_workers: int = 0,
                        prefetch: int = 2, with_classes: bool = False) -> Iterator[Batch]:
    """Yield the epoch's batches of the zarr store at ``store_path``: block-shuffled by (seed, epoch) with
    ``shuffle`` (store order without), split by DDP rank (defaults from torch.distributed if initialised).

    ``prefetch`` batches are read ahead in a background thread (num_workers 0) or by ``num_workers``
    DataLoader processes. The last batch may be short.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rank, world_size = _dist_info(rank, world_size)
    ds = ZarrGradientDataset(store_path, with_classes=with_classes)
    order = np.asarray(ds.epoch_order(seed=seed, epoch=epoch) if shuffle else range(len(ds)), dtype=np.int64)
    mine = rank_order(order, rank, world_size)
    yield from ds.loader(batch_size, mine.tolist(), num_workers=num_workers, prefetch=prefetch)
