"""PyTorch access to a gradient store: random access over zarr, or streaming over the webdataset export.

Both yield model-space samples: images float32 (uint8 / 255 for pixel_space "unit"; "raw" floats as they
are), labels int64, grads float32 (K, *S) and, with ``with_classes``, the class ids int64 (K,) of those K
gradients (K = C and classes 0..C-1 for v1 and K = C stores). For the same sample order both give identical
batches.
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from pagstore.shards import (KEY_PATTERN, ExportError, decode_sample, open_tar_streams, read_index, shard_entries,
                             tar_samples)
from pagstore.prefetch import Prefetched
from pagstore.spec import StoreSpec
from pagstore.store import GradientStore, StoreError, location_str, nonfinite_rows, open_store
from pagstore.store_checks import any_nonfinite

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def to_model_space(images: np.ndarray) -> torch.Tensor:
    """Stored images (n, *S) -> float32 model-space tensor: uint8 / 255 ([0, 1]); float stays as is."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class ZarrGradientDataset(torch.utils.data.Dataset):
    """Map-style dataset over a complete store: item i -> (image (*S) f32, label () i64, grads (C, *S) f32).

    Batches cost one decode per touched chunk: ``__getitems__`` reads a DataLoader batch in one go, and
    :meth:`loader` also skips per-sample collation. Shuffle with :meth:`epoch_order` (block-local), since a
    uniform permutation decodes nearly every chunk for every batch. The zarr handle is reopened per worker.
    """

    def __init__(self, path: str | Path, *, with_classes: bool = False, cache_bytes: int = 256 << 20) -> None:
        self.path = location_str(path)
        self.with_classes = with_classes
        # Whole decoded shards, least recently used last out: a shuffled batch touches many shards, and
        # without the cache each touched chunk would be decoded again for every batch that touches it.
        self.cache_bytes = cache_bytes
        self._cache: collections.OrderedDict[int, tuple[np.ndarray, ...]] = collections.OrderedDict()
        store = open_store(self.path, "r")
        missing = store.missing_shards()
        if missing:
            raise StoreError(f"{self.path}: store is incomplete (missing shards {missing[:20]}); finish writing it "
                             "before training on it")
        self.spec = store.spec
        self._store: GradientStore | None = store
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.spec.num_samples

    def _get_store(self) -> GradientStore:
        if self._store is None or self._pid != os.getpid():  # forked worker: fresh zarr handle
            self._store, self._pid = open_store(self.path, "r"), os.getpid()
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_cache": collections.OrderedDict()}

    def _shard(self, store: GradientStore, k: int) -> dict[str, np.ndarray]:
        """Shard ``k`` read whole, checked and still encoded (:meth:`GradientStore.read_stored`, plus "classes"
        with ``with_classes``), from the cache if there. Kept encoded: int8 shards cost a quarter of their
        float32 size in the cache, and each batch is decoded once, straight into its output tensor."""
        hit = self._cache.get(k)
        if hit is not None:
            self._cache.move_to_end(k)
            return hit
        sl = store.shard_slice(k)
        arrays = store.read_stored(sl)
        if self.with_classes:
            arrays["classes"] = store.read_classes(sl)
        size = sum(a.nbytes for a in arrays.values())
        if size <= self.cache_bytes:
            while self._cache and sum(a.nbytes for v in self._cache.values() for a in v.values()) + size > \
                    self.cache_bytes:
                self._cache.popitem(last=False)
            self._cache[k] = arrays
        return arrays

    def read_batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """Rows ``indices`` as stacked tensors: images (B, *S), labels (B,), grads (B, K, *S) (and the classes
        (B, K) of the grads with ``with_classes``)."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        store = self._get_store()
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            bad = int(rows[(rows < -len(self)) | (rows >= len(self))][0])
            raise IndexError(f"{self.path}: sample index {bad} out of range [0, {len(self)})")
        rows = rows % len(self)
        parts: list[tuple[np.ndarray | slice, dict[str, np.ndarray], np.ndarray | slice]] = []
        if self.cache_bytes <= 0 or rows.size == 0:
            arrays = store.read_stored(rows)
            if self.with_classes:
                arrays["classes"] = store.read_classes(rows)
            parts.append((slice(0, rows.size), arrays, slice(None)))
        else:
            sps = self.spec.samples_per_shard
            shard_of = rows // sps
            for k in np.unique(shard_of):
                pos = np.flatnonzero(shard_of == k)
                parts.append((_as_run(pos), self._shard(store, int(k)), _as_run(rows[pos] - int(k) * sps)))
        # uint8 images may stay views of the cache (to_model_space converts them into a new tensor); float
        # images, labels and classes are copied, so a caller editing a batch in place never edits the cache
        images = _gather([(pos, arrays["images"], local) for pos, arrays, local in parts], rows.size,
                         copy=self.spec.image_dtype != "uint8")
        labels = _gather([(pos, arrays["labels"], local) for pos, arrays, local in parts], rows.size, copy=True)
        grads = torch.empty((rows.size, *self.spec.grad_shape), dtype=torch.float32)
        for pos, arrays, local in parts:
            self._decode_into(grads, pos, arrays, local)
        out = (to_model_space(images), torch.from_numpy(labels.astype(np.int64, copy=False)), grads)
        if self.with_classes:
            classes = _gather([(pos, arrays["classes"], local) for pos, arrays, local in parts], rows.size,
                              copy=True)
            return (*out, torch.from_numpy(classes))
        return out

    def _decode_into(self, out: torch.Tensor, pos: np.ndarray | slice, arrays: dict[str, np.ndarray],
                     local: np.ndarray | slice) -> None:
        """Decode stored grads rows ``local`` of one shard into ``out[pos]`` (float32 (B, K, *S)): one pass
        from the stored bytes when both are runs of rows (sequential and block-shuffled reads), else through
        one temporary of the part."""
        q = arrays["grads"][local]  # a view when local is a slice
        direct = isinstance(pos, slice)
        if self.spec.grad_codec == "int8":
            from pagstore.codec import decode_int8

            scales = arrays["grad_scales"][local]
            if direct and self.spec.grad_dtype == "float32":  # same values as decode-then-convert
                decode_int8(q, scales, out=out[pos].numpy())
                return
            src = torch.from_numpy(decode_int8(q, scales, self.spec.grad_dtype))
        else:
            src = torch.from_numpy(np.ascontiguousarray(q))
        if direct:
            out[pos].copy_(src)  # float16 -> float32 conversion into the output, no float32 temporary
        else:
            out[torch.from_numpy(pos)] = src.float()

    def __getitem__(self, i: int | Sequence[int]) -> Batch:
        """One sample, or, given a list of indices (a BatchSampler's output), the stacked batch."""
        if not isinstance(i, (int, np.integer)):
            return self.read_batch(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        return tuple(t[0] for t in self.read_batch([i % len(self)]))

    def loader(self, batch_size: int, order: Sequence[int] | None = None, *, drop_last: bool = False,
               num_workers: int = 0, prefetch: int = 2) -> Iterable[Batch]:
        """Whole batches in ``order`` (default: store order), each read with one zarr selection and no
        per-sample collation (about twice as fast as ``DataLoader(ds, batch_size)``).

        With ``num_workers`` 0 and ``prefetch`` > 0 a background thread reads and decodes ``prefetch`` batches
        ahead of the consumer (:class:`pagstore.prefetch.Prefetched`), so the next shard's decode overlaps
        the training step; ``prefetch=0`` returns the plain DataLoader (worker processes prefetch by
        themselves).
        """
        sampler = torch.utils.data.BatchSampler(range(len(self)) if order is None else list(order), batch_size,
                                                drop_last)
        if num_workers > 0 or prefetch <= 0:
            return torch.utils.data.DataLoader(self, batch_size=None, sampler=sampler, num_workers=num_workers)
        return Prefetched(lambda: torch.utils.data.DataLoader(self, batch_size=None, sampler=sampler),
                          depth=prefetch, length=len(sampler))

    def __getitems__(self, indices: list[int]) -> list[Batch]:
        batch = self.read_batch(indices)
        return [tuple(t[j] for t in batch) for j in range(len(indices))]

    def epoch_order(self, *, seed: int, epoch: int, block_chunks: int = 4) -> list[int]:
        """A shuffled sample order that decodes each zarr chunk about once per epoch (use with ``loader``).

        A uniform permutation makes every batch touch nearly every chunk, so each chunk is decoded once
        per batch. Instead, like webdataset's shard + buffer shuffle: blocks of ``block_chunks`` contiguous
        chunks are visited in a random order and samples are shuffled within pairs of visited blocks.
        Seeded by (seed, epoch).
        """
        chunk = int(self._get_store().arrays["grads"].chunks[0])
        return chunk_shuffled_order(len(self), chunk * block_chunks, seed=seed, epoch=epoch)


def chunk_shuffled_order(num_samples: int, block_rows: int, *, seed: int, epoch: int,
                         mix_blocks: int = 2) -> list[int]:
    """Permutation of range(num_samples): contiguous blocks of ``block_rows`` rows in random order, samples
    shuffled within each group of ``mix_blocks`` consecutive (visited) blocks."""
    rng = np.random.default_rng([seed, epoch])
    blocks = rng.permutation(-(-num_samples // block_rows))
    order = []
    for w in range(0, len(blocks), mix_blocks):
        rows = np.concatenate([np.arange(b * block_rows, min((b + 1) * block_rows, num_samples))
                               for b in blocks[w:w + mix_blocks]])
        order.append(rng.permutation(rows))
    return np.concatenate(order).tolist() if order else []


def _as_run(idx: np.ndarray) -> np.ndarray | slice:
    """``idx`` as a slice when it is a run of consecutive increasing rows (indexing then gives a view)."""
    if idx.size and int(idx[-1]) - int(idx[0]) + 1 == idx.size and (idx.size < 2 or bool((np.diff(idx) == 1).all())):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _gather(parts: list[tuple[np.ndarray | slice, np.ndarray, np.ndarray | slice]], n: int, *,
            copy: bool) -> np.ndarray:
    """Rows of several shards' arrays into one (n, ...) array: out[pos] = array[local] for each part (without
    ``copy``, a view of the single part when it already is the whole batch in order)."""
    if len(parts) == 1 and parts[0][0] == slice(0, n):
        one = parts[0][1][parts[0][2]]
        return one.copy() if copy and isinstance(parts[0][2], slice) else one
    first = parts[0][1]
    out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
    for pos, array, local in parts:
        out[pos] = array[local]
    return out


def stream_batches(store_path: str | Path, batch_size: int, *, shuffle: bool, seed: int, epoch: int,
                   epoch_length: int | None = None, rank: int | None = None, world_size: int | None = None,
                   num_workers: int = 0, shuffle_buffer: int = 1000, with_index: bool = False,
                   with_classes: bool = False, prefetch: int = 2) -> Iterator[Any]:
    """Stream batches from the webdataset export of a store.

    Shards are shuffled per epoch (``shuffle``: permutation seeded by (seed, epoch)), then split by DDP rank
    (rank::world_size; defaults from torch.distributed if initialised) and by DataLoader worker; samples
    are shuffled within a buffer of ``shuffle_buffer`` seeded by (seed, epoch, rank, worker).
    With ``epoch_length`` (batches per rank) shards are instead drawn with replacement, so every rank
    yields exactly ``epoch_length`` batches (what DDP needs to stay in step). With ``num_workers`` 0,
    ``prefetch`` batches are read and decoded ahead in a background thread (0: in the consumer's thread).

    Yields:
        (images (B, *S) float32, labels (B,) int64, grads (B, K, *S) float32) tensors; with ``with_classes``
        next the classes (B, K) int64 of the grads; with ``with_index`` last the store rows (B,) int64. The
        last batch may be short (not with epoch_length).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rank, world_size = _dist_info(rank, world_size)
    index = read_index(store_path)
    entries = shard_entries(store_path, index)
    if epoch_length is None and world_size > len(entries):
        raise ValueError(f"{location_str(store_path)}: {len(entries)} tar(s) cannot feed {world_size} ranks (some "
                         "would get no data and DDP would hang); pass epoch_length, or export with fewer "
                         "samples_per_tar")
    spec = StoreSpec.from_attrs(index.get("spec", {}), where=f"{location_str(store_path)}/shards/index.json")
    source = _ShardStream(entries, spec, batch_size, shuffle=shuffle, seed=seed, epoch=epoch, rank=rank,
                          world_size=world_size, resampled=epoch_length is not None,
                          shuffle_buffer=shuffle_buffer, with_index=with_index, with_classes=with_classes)
    it: Iterable[Any] = source
    if num_workers > 0:
        it = torch.utils.data.DataLoader(source, batch_size=None, num_workers=num_workers)
    elif prefetch > 0:
        it = Prefetched(lambda: iter(source), depth=prefetch)
    if epoch_length is not None:
        it = itertools.islice(it, epoch_length)
    yield from it


def _dist_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        dist = torch.distributed
        live = dist.is_available() and dist.is_initialized()
        rank = rank if rank is not None else (dist.get_rank() if live else 0)
        world_size = world_size if world_size is not None else (dist.get_world_size() if live else 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class _ShardStream(torch.utils.data.IterableDataset):
    """The webdataset pipeline for one (rank, worker): shard list -> tar samples -> shuffle -> batches.

    Every tar is checked against its index.json entry (sha256, sample count) and every sample against the
    export's spec (shape, dtype, label range, finiteness): corrupt exports raise ExportError naming the tar
    (and the sample), never a library error or fewer/wrong samples.
    """

    def __init__(self, entries: list[dict[str, Any]], spec: StoreSpec, batch_size: int, *, shuffle: bool,
                 seed: int, epoch: int, rank: int, world_size: int, resampled: bool, shuffle_buffer: int,
                 with_index: bool, with_classes: bool = False) -> None:
        super().__init__()
        self.entries, self.spec = entries, spec
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, epoch
        self.rank, self.world_size, self.resampled = rank, world_size, resampled
        self.shuffle_buffer, self.with_index, self.with_classes = shuffle_buffer, with_index, with_classes

    def _worker(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def _shards(self, _: Any = None) -> Iterator[dict[str, Any]]:
        """Explicit node + worker split (no reliance on webdataset's environment guessing). Yields the
        index.json entries {"url", "sha256", "count", ...} that ``tar_samples`` checks each tar against."""
        wid, nw = self._worker()
        if self.resampled:
            rng = random.Random(_seed(self.seed, self.epoch, self.rank, wid, 1))
            while True:
                yield dict(rng.choice(self.entries))
        order = list(self.entries)
        if self.shuffle:
            random.Random(_seed(self.seed, self.epoch)).shuffle(order)  # same permutation on every rank
        for entry in order[self.rank:: self.world_size][wid::nw]:
            yield dict(entry)

    def __iter__(self) -> Iterator[Any]:
        wid, _ = self._worker()
        stages: list[Any] = [self._shards, open_tar_streams, tar_samples]
        if self.shuffle:
            rng = random.Random(_seed(self.seed, self.epoch, self.rank, wid, 2))
            stages.append(wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng))
        # Shape/dtype/label per sample (cheap scalar checks); finiteness once per stacked batch in _batcher.
        stages += [wds.map(functools.partial(_decode_with_url, spec=self.spec)),
                   _batcher(self.batch_size, self.with_index, self.with_classes)]
        return iter(wds.DataPipeline(*stages))


def _decode_with_url(sample: dict[str, Any], spec: StoreSpec) -> tuple[Any, ...]:
    return (*decode_sample(sample, spec, finite=False, with_classes=True), sample.get("__url__", "?"))


def _batcher(batch_size: int, with_index: bool, with_classes: bool = False) -> Any:
    def stage(samples: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
        while chunk := list(itertools.islice(samples, batch_size)):
            images, labels, grads, rows, classes, urls = zip(*chunk)
            image_batch, grad_batch = np.stack(images), np.stack(grads)
            floats = image_batch.dtype.kind == "f"
            if any_nonfinite(grad_batch) or (floats and any_nonfinite(image_batch)):  # cheap pass; rows if bad
                bad = nonfinite_rows(grad_batch) | (nonfinite_rows(image_batch) if floats else False)
                j = int(np.flatnonzero(bad)[0])
                raise ExportError(f"{urls[j]}: sample {KEY_PATTERN % rows[j]}: grads or image contain NaN or inf; "
                                  "run `pagstore verify`")
            out = (to_model_space(image_batch), torch.tensor(labels, dtype=torch.int64),
                   torch.from_numpy(grad_batch).float())
            if with_classes:
                out = (*out, torch.from_numpy(np.stack(classes).astype(np.int64)))
            yield (*out, torch.tensor(rows, dtype=torch.int64)) if with_index else out
    return stage
