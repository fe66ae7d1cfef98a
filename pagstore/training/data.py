"""Batches for the training loop: ``(x float (B, *S), y int64 (B,), grads (B, C, *S) or None)``.

Methods with a PAG term stream images, labels and stored gradients from the store's webdataset shards
(:func:`pagstore.loaders.stream_batches`, split by DDP rank), or from its zarr arrays when it has no export;
methods without one read the prepared train split with a seeded shuffle (split by rank too, so every rank
sees disjoint samples).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from pagstore.data.prepared import PreparedSplit

Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class DatasetMismatchError(ValueError):
    """A gradient store was not made from the prepared split it is trained against."""


def array_batches(
    split: PreparedSplit,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Batch]:
    """Yield (x (B, *S) float32 model space, y (B,), None); the last short batch is kept.

    The permutation depends only on (seed, epoch), so ranks agree on it and take disjoint strided parts.
    """
    n = len(split)
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    order = order[rank::world_size]
    for start in range(0, len(order), batch_size):
        idx = np.sort(order[start : start + batch_size])  # sorted reads are cheaper; order within a batch is moot
        yield torch.from_numpy(split.as_float(idx)), torch.from_numpy(split.labels[idx]), None


def store_batches(store_path: str | Path, batch_size: int, *, seed: int, epoch: int,
                  k_of_c: bool = False, num_workers: int = 0) -> Iterator[Batch]:
    """Yield (x, y, grads float32 (B, K, *S)), shuffled per (seed, epoch) and split by DDP rank; with
    ``k_of_c`` (a store of K < C classes) a 4th item, the classes (B, K) of the grads.

    A store with a webdataset export streams its tars (:func:`pagstore.loaders.stream_batches`); one without
    (``export_webdataset: false``) reads the zarr store block-shuffled with a reader thread
    (:func:`pagstore.zarr_stream.zarr_stream_batches`). ``num_workers`` DataLoader processes read and decode
    ahead of the training step.
    """
    from pagstore.shards import has_export  # the store package is only needed by PAG methods

    if has_export(store_path):
        from pagstore.loaders import stream_batches

        yield from stream_batches(str(store_path), batch_size, shuffle=True, seed=seed, epoch=epoch,
                                  num_workers=num_workers, with_classes=k_of_c)
        return
    from pagstore.zarr_stream import zarr_stream_batches

    yield from zarr_stream_batches(str(store_path), batch_size, shuffle=True, seed=seed, epoch=epoch,
                                   num_workers=num_workers, with_classes=k_of_c)


def check_store_matches(store_path: str | Path, split: PreparedSplit) -> dict:
    """Open the store, check its dataset fingerprint and shapes match ``split``; return its spec attributes.

    Raises:
        DatasetMismatchError: different data, class count or sample shape (before any training work).
    """
    from pagstore.store import open_store

    store = open_store(str(store_path), mode="r")
    spec = store.spec
    fp = split.fingerprint()
    if spec.dataset.fingerprint != fp:
        raise DatasetMismatchError(
            f"{store_path}: store was made from dataset {spec.dataset.fingerprint} but the prepared train split "
            f"is {fp}; re-run distillation for this data (dvc repro) or point --stores at the matching stores"
        )
    if tuple(spec.sample_shape) != split.sample_shape or spec.num_classes != split.num_classes:
        raise DatasetMismatchError(
            f"{store_path}: store samples {tuple(spec.sample_shape)} x {spec.num_classes} classes do not match the "
            f"prepared split {split.sample_shape} x {split.num_classes} classes"
        )
    if not store.is_complete():
        raise DatasetMismatchError(f"{store_path}: store is incomplete (missing shards {store.missing_shards()})")
    return spec.to_attrs()
