"""Tiny prepared splits and gradient stores for the training tests (real formats, few samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pagstore.data.prepared import PreparedSplit


def tiny_split(n: int = 48, classes: int = 3, size: int = 8, seed: int = 0, split: str = "train") -> PreparedSplit:
    """uint8 images (n, 1, size, size): class c is a bright band at rows ~c, plus noise; labels cycle."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % classes
    images = rng.integers(0, 60, size=(n, 1, size, size)).astype(np.int64)
    band = size // classes
    for i, c in enumerate(labels):
        images[i, 0, c * band : (c + 1) * band] += 180
    return PreparedSplit(images.clip(0, 255).astype(np.uint8), labels, tuple(f"c{c}" for c in range(classes)),
                         {"dataset": "tiny", "split": split})


def write_prepared(root: Path, n: int = 48, classes: int = 3, size: int = 8) -> tuple[PreparedSplit, Path]:
    """Write ``root/prepared/{train,test}.npz``; return the train split and the prepared directory."""
    d = root / "prepared"
    train = tiny_split(n, classes, size, seed=0)
    train.save(d / "train.npz")
    tiny_split(max(n // 2, classes), classes, size, seed=1, split="test").save(d / "test.npz")
    return train, d


def write_store(path: Path, split: PreparedSplit, samples_per_shard: int = 8, fingerprint: str | None = None) -> Path:
    """A complete store over ``split`` with its webdataset export; g(x, c) = mean image of class c - x."""
    from pagstore.shards import export_webdataset
    from pagstore.store import create_store

    x = split.as_float()
    c = split.num_classes
    means = np.stack([x[split.labels == k].mean(0) for k in range(c)])
    grads = (means[None] - x[:, None]).astype(np.float32)  # (N, C, *S): towards each class mean
    store = create_store(
        path, num_samples=len(split), num_classes=c, sample_shape=split.sample_shape, grad_dtype="float32",
        dataset={"name": "tiny", "fingerprint": fingerprint or split.fingerprint(),
                 "class_names": list(split.class_names), "split": "train"},
        source={"name": "class-mean"}, samples_per_shard=samples_per_shard,
    )
    for k in range(store.num_shards):
        sl = store.shard_slice(k)
        store.write_shard(k, split.images[sl], split.labels[sl], grads[sl], np.arange(len(split))[sl])
    export_webdataset(path, samples_per_tar=samples_per_shard)
    return path
