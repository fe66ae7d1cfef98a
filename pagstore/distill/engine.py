"""Distillation engine: fill a gradient store shard by shard, in parallel with dask, resumably.

Work is split by store shard; each task computes and writes whole shards. Rerunning after an
interruption opens the existing store and only does ``missing_shards()``. The scheduler is local dask
threads by default; a ``scheduler`` address (or ``"local-cluster:N"``) runs the same tasks on
dask.distributed with one source (one diffusion model) per worker — see ``pagstore.distill.cluster``,
imported only then so that ``import pagstore`` stays light.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.classes import choose_classes
from pagstore.data.prepared import PreparedSplit
from pagstore.distill.shard import ShardWork, run_shard
from pagstore.sources.base import GradientSource

SourceFactory = Callable[[], GradientSource]


class DistillError(RuntimeError):
    """Distillation cannot start or resume (e.g. an existing store was made differently)."""


@dataclass(frozen=True)
class DistillResult:
    """What a run did: shards computed now, shards in the store, wall time."""

    store_path: str
    shards_computed: list[int]
    num_shards: int
    seconds: float


def open_or_create(
    store_path: str | Path,
    split: PreparedSplit,
    index: np.ndarray,
    source_info: dict[str, Any],
    *,
    samples_per_shard: int | None,
    grad_dtype: str,
    split_name: str,
    replace_mismatched: bool = False,
    num_target_classes: int | None = None,
    grad_codec: str = "raw",
    class_seed: int = 0,
    grad_compression: str = "zstd",
) -> Any:
    """Create the store, or reopen it to resume. A store made from other data or another source is an error,
    or, with ``replace_mismatched``, replaced by a new empty one."""
    from pagstore import store as store_mod  # zarr is imported only when a store is touched

    dataset = {
        "name": str(split.meta.get("dataset", split.meta.get("name", "unknown"))),
        "fingerprint": split.fingerprint(),
        "class_names": list(split.class_names),
        "split": split_name,
    }
    # JSON round trip: the spec read back from zarr attributes has lists, not tuples.
    source_info = json.loads(json.dumps(source_info, sort_keys=True, default=str))
    def create(mode: str) -> Any:
        return store_mod.create_store(
            store_path,
            mode=mode,
            num_samples=len(index),
            num_classes=split.num_classes,
            sample_shape=split.sample_shape,
            image_dtype=str(split.images.dtype),
            grad_dtype=grad_dtype,
            dataset=dataset,
            source=source_info,
            samples_per_shard=samples_per_shard,
            num_target_classes=num_target_classes,
            class_seed=class_seed,
            grad_codec=grad_codec,
            grad_compression=grad_compression,
        )

    try:
        store = create("a")
        done_index, missing = store.read_index(slice(None)), set(store.missing_shards())
        for k in range(store.num_shards):
            sl = store.shard_slice(k)
            if k not in missing and not np.array_equal(done_index[sl], index[sl]):
                raise DistillError(f"{store_path}: shard {k} holds other dataset indices")
    except (store_mod.StoreError, DistillError) as exc:
        if not replace_mismatched:
            raise DistillError(f"cannot resume: {exc}; delete the store to distill again") from None
        print(f"{store_path}: existing store does not match ({exc}); starting it afresh")
        store = create("w")
    return store


def distill(
    store_path: str | Path,
    split: PreparedSplit,
    source_factory: SourceFactory,
    *,
    indices: np.ndarray | None = None,
    samples_per_shard: int | None = None,
    grad_dtype: str = "float16",
    batch_size: int = 64,
    scheduler: str = "",
    workers: int = 0,
    split_name: str = "train",
    source: GradientSource | None = None,
    replace_mismatched: bool = False,
    num_target_classes: int | None = None,
    grad_codec: str = "raw",
    class_seed: int = 0,
    grad_compression: str = "zstd",
) -> DistillResult:
    """Distill gradients of ``split[indices]`` into the store at ``store_path`` (created or resumed).

    Args:
        store_path: store directory.
        split: the samples to distill (uint8 (N, ch, H, W) images or float32 (N, D) vectors).
        source_factory: zero-argument picklable callable building the source (a ``SourceRecipe``); called
            once here, or once per worker on a cluster.
        indices: dataset indices to distill, int64 (n,) (default: all of ``split``); stored as ``index``.
        samples_per_shard: store shard size (None: the store's default).
        grad_dtype: "float16" or "float32".
        batch_size: samples per ``source.compute`` call (SBG pads each call to whole forwards of its
            ``forward_batch`` images: a multiple of it wastes nothing).
        scheduler: "" = local dask threads; "local-cluster:N" = a local dask.distributed cluster with N
            process workers; anything else = a dask.distributed scheduler address.
        workers: local dask threads (0 = number of CPU cores); each task runs with one torch thread.
        split_name: recorded in the store's dataset spec.
        source: an already built source to reuse locally (skips calling ``source_factory`` here).
        replace_mismatched: an existing store made differently is replaced instead of being an error.
        num_target_classes: K of the C classes per sample (None: all C); K < C stores the true class and
            K - 1 others drawn by (class_seed, dataset index), and computes only those (SBG: K + 1 rows).
        grad_codec: "raw" (grad_dtype values) or "int8" (see pagstore.codec).
        class_seed: seeds the K - 1 other classes (recorded in the spec).
        grad_compression: chunk compression of the gradient arrays: "zstd", "lz4hc" or "none"
            (see pagstore.chunk_compression).

    Returns:
        which shards were computed now and how long it took.
    """
    if batch_size < 1:
        raise DistillError(f"batch_size must be >= 1, got {batch_size}")
    from pagstore.chunk_compression import check_compression

    try:  # before open_or_create, which would read a bad value as "the existing store does not match"
        check_compression(grad_compression)
    except ValueError as exc:
        raise DistillError(str(exc)) from None
    index = np.arange(len(split), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= len(split)):
        raise DistillError(f"indices must lie in [0, {len(split)}), got [{index.min()}, {index.max()}]")
    source = source if source is not None else source_factory()
    store = open_or_create(
        store_path, split, index, source.describe(),
        samples_per_shard=samples_per_shard, grad_dtype=grad_dtype, split_name=split_name,
        replace_mismatched=replace_mismatched, num_target_classes=num_target_classes, grad_codec=grad_codec,
        class_seed=class_seed, grad_compression=grad_compression,
    )
    k_classes = store.spec.num_target_classes  # None: all C

    def work(k: int, sl: slice) -> ShardWork:
        labels = split.labels[index[sl]]
        classes = None if k_classes is None else choose_classes(labels, index[sl], split.num_classes, k_classes,
                                                                class_seed)
        return ShardWork(k, split.images[index[sl]], labels, index[sl], classes)

    todo = [work(k, store.shard_slice(k)) for k in store.missing_shards()]
    start = time.perf_counter()
    if todo and scheduler:
        from pagstore.distill.cluster import run_on_cluster  # imports dask.distributed

        run_on_cluster(scheduler, str(store_path), todo, source_factory, batch_size, grad_dtype)
    elif todo:
        run_local(str(store_path), todo, source, batch_size, grad_dtype, workers)
    return DistillResult(str(store_path), [w.k for w in todo], store.num_shards, time.perf_counter() - start)


def run_local(
    store_path: str, todo: list[ShardWork], source: GradientSource, batch_size: int, grad_dtype: str, workers: int
) -> None:
    """Run shard tasks on the local dask threaded scheduler with a progress bar; one shared source."""
    import dask
    import dask.threaded
    from dask.diagnostics import ProgressBar

    threads = min(workers or os.cpu_count() or 1, len(todo))
    # One torch thread per task, parallelism from tasks: threads x torch threads <= cores, and CPU kernels
    # reduce in a thread-count-dependent order, so a fixed count keeps bytes independent of `workers`.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tasks = [dask.delayed(run_shard, pure=False)(store_path, source, w, batch_size, grad_dtype) for w in todo]
        # Redraw once a second, not dask's default ten: DVC logs keep every redraw when not on a terminal.
        with ProgressBar(minimum=1.0, dt=1.0):
            # The threaded get itself, not "threads": naming a scheduler makes dask import distributed.
            dask.compute(*tasks, scheduler=dask.threaded.get, num_workers=threads)
    finally:
        torch.set_num_threads(previous)
