"""Read throughput of both store layouts vs a raw numpy memmap of the same float16 bytes, in one run.

All readers produce the same thing a training loop consumes: batches of float32 torch tensors
(images (B, 3, 32, 32) in [0, 1], labels (B,), grads (B, 10, 3, 32, 32)). The memmap baseline reads
uncompressed uint8/int64/float16 arrays from one .npy each and converts; the zarr store decodes its
zstd chunks; the stream reads the webdataset tars. Each reader runs once to warm the page cache, then all are
timed in interleaved rounds (best of). Goal: each layout >= 0.5x the memmap throughput.
Rows: the float16 store (format v2 with codec raw holds the same bytes as v1: the old rows) and the same
gradients in a v2 store with the int8 direct codec (decoded to float32 by the reader); "uncompressed" rows
read float16 and int8 stores written with ``grad_compression="none"`` (gradient chunks are raw bytes + crc32c,
read by pagstore.shard_decode straight into the batch's memory; images etc. stay zstd). The zarr rows
use ZarrGradientDataset.loader's default reader thread (prefetch=2) and pagstore.shard_decode; "(no
prefetch)" rows read in the consumer's thread, "(zarr decoder, ...)" rows decode through zarr, as before
issue 15's read work (the webdataset rows likewise read ahead in a thread now). "+ compute" rows run a fixed amount of torch work per batch
(``--compute-ms``, calibrated once, one torch thread) after each batch, as a training step would: there a
reader thread decodes the next batches while the step computes, and the memmap reads in line.

    python benchmarks/bench_store_read.py [--n 2048] [--batch-size 256] [--repeats 3] [--compute-ms 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_store_size import C, class_mean_gradients, natural_images  # noqa: E402


def build(workdir: Path, n: int, grad_codec: str = "raw", grad_compression: str = "zstd") -> Path:
    """A complete store of n photo-like images with class-mean gradients (and its webdataset export) in
    ``workdir``, plus images/labels/grads .npy files of the same values for the memmap baseline."""
    from pagstore.shards import export_webdataset
    from pagstore.store import create_store

    images, labels = natural_images(n, "photos")
    grads = class_mean_gradients(images, labels).astype(np.float16)
    for name, arr in (("images", images), ("labels", labels), ("grads", grads)):
        np.save(workdir / f"{name}.npy", arr)
    path = workdir / f"store-{grad_codec}-{grad_compression}"
    store = create_store(path, "w", num_samples=n, num_classes=C, sample_shape=(3, 32, 32),
                         dataset={"name": "photos", "fingerprint": "-", "class_names": [str(c) for c in range(C)],
                                  "split": "bench"}, source={"name": "class-mean"}, grad_codec=grad_codec,
                         grad_dtype="float16" if grad_codec == "raw" else "float32", grad_compression=grad_compression)
    for k in range(store.num_shards):
        sl = store.shard_slice(k)
        store.write_shard(k, images[sl], labels[sl], grads[sl], np.arange(sl.start, sl.stop))
    export_webdataset(path)
    return path


def memmap_batches(workdir: Path, batch_size: int, order: np.ndarray) -> Iterable[tuple]:
    import torch

    # copy-on-write maps: writable, so torch.from_numpy does not warn; reads still come from the page cache
    im, lb, gr = (np.load(workdir / f"{k}.npy", mmap_mode="c") for k in ("images", "labels", "grads"))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        if idx[-1] - idx[0] + 1 == len(idx):  # sequential: slice, as a reader of a flat file would
            idx = slice(int(idx[0]), int(idx[-1]) + 1)
        yield (torch.from_numpy(np.asarray(im[idx])).float().div_(255), torch.from_numpy(np.asarray(lb[idx])),
               torch.from_numpy(np.asarray(gr[idx])).float())


def zarr_batches(path: Path, batch_size: int, order: np.ndarray, prefetch: int = 2,
                 fast: bool = True) -> Iterable[tuple]:
    """ZarrGradientDataset.loader batches; ``fast=False`` decodes through zarr instead of
    pagstore.shard_decode (the store picks its reader when opened)."""
    import pagstore.shard_decode as shard_decode
    from pagstore.loaders import ZarrGradientDataset

    shard_decode.ENABLED = fast
    try:
        ds = ZarrGradientDataset(path)
    finally:
        shard_decode.ENABLED = True
    return ds.loader(batch_size, order.tolist(), prefetch=prefetch)


def fixed_compute(ms: float) -> Callable[[], None]:
    """A training step stand-in: the same torch work every call (matmuls), sized to take ``ms`` alone."""
    import torch

    a = torch.randn(192, 192)

    def step(reps: int) -> None:
        x = a
        for _ in range(reps):
            x = torch.tanh(x @ a)

    step(5)
    t = time.perf_counter()
    step(50)
    reps = max(1, round(ms / 1e3 / ((time.perf_counter() - t) / 50)))
    return lambda: step(reps)


def with_compute(batches: Callable[[], Iterable[tuple]], compute: Callable[[], None]) -> Iterable[tuple]:
    for batch in batches():
        compute()
        yield batch


def timed_interleaved(runs: dict[str, Callable[[], Iterable[tuple]]], rounds: int) -> dict[str, float]:
    """Best samples/s per reader over ``rounds``; every round runs every reader once, so on a shared, noisy
    machine the readers see the same conditions and the ratios stay meaningful."""
    for make in runs.values():  # warm-up pass: page cache, imports
        for _ in make():
            pass
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, make in runs.items():
            t, count = time.perf_counter(), 0
            for batch in make():
                count += batch[0].shape[0]
            best[name] = max(best[name], count / (time.perf_counter() - t))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (best of)")
    ap.add_argument("--compute-ms", type=float, default=40.0, help="simulated training step per batch")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from pagstore.loaders import stream_batches

    bs = args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = build(workdir, args.n)
        path8 = build(workdir, args.n, "int8")
        path_raw = build(workdir, args.n, grad_compression="none")
        path8_raw = build(workdir, args.n, "int8", grad_compression="none")
        seq = np.arange(args.n)
        perm = np.random.default_rng(0).permutation(args.n)
        from pagstore.loaders import ZarrGradientDataset

        chunk_order = np.asarray(ZarrGradientDataset(path).epoch_order(seed=0, epoch=0))
        step = fixed_compute(args.compute_ms)
        mm_seq, mm_shuf = "memmap sequential", "memmap shuffled"
        mm_step = "memmap shuffled + compute"
        # name -> (baseline row: same work from a flat file, reader)
        runs: dict[str, tuple[str, Callable[[], Iterable[tuple]]]] = {
            mm_seq: (mm_seq, lambda: memmap_batches(workdir, bs, seq)),
            "zarr sequential": (mm_seq, lambda: zarr_batches(path, bs, seq)),
            "zarr sequential (no prefetch)": (mm_seq, lambda: zarr_batches(path, bs, seq, prefetch=0)),
            "zarr sequential (zarr decoder, no prefetch)": (mm_seq, lambda: zarr_batches(path, bs, seq, prefetch=0,
                                                                                        fast=False)),
            "webdataset stream (no shuffle)": (mm_seq, lambda: stream_batches(path, bs, shuffle=False, seed=0,
                                                                              epoch=0)),
            mm_shuf: (mm_shuf, lambda: memmap_batches(workdir, bs, perm)),
            "zarr shuffled": (mm_shuf, lambda: zarr_batches(path, bs, perm)),
            "zarr block-shuffled (epoch_order)": (mm_shuf, lambda: zarr_batches(path, bs, chunk_order)),
            "zarr block-shuffled (no prefetch)": (mm_shuf, lambda: zarr_batches(path, bs, chunk_order, prefetch=0)),
            "zarr block-shuffled (zarr decoder, no prefetch)": (mm_shuf, lambda: zarr_batches(
                path, bs, chunk_order, prefetch=0, fast=False)),
            "webdataset stream (shuffled)": (mm_shuf, lambda: stream_batches(path, bs, shuffle=True, seed=0,
                                                                            epoch=0)),
            "int8 zarr sequential": (mm_seq, lambda: zarr_batches(path8, bs, seq)),
            "int8 zarr shuffled": (mm_shuf, lambda: zarr_batches(path8, bs, perm)),
            "int8 zarr block-shuffled": (mm_shuf, lambda: zarr_batches(path8, bs, chunk_order)),
            "int8 webdataset stream (shuffled)": (mm_shuf, lambda: stream_batches(path8, bs, shuffle=True, seed=0,
                                                                                 epoch=0)),
            "uncompressed zarr sequential": (mm_seq, lambda: zarr_batches(path_raw, bs, seq)),
            "uncompressed zarr sequential (no prefetch)": (mm_seq, lambda: zarr_batches(path_raw, bs, seq,
                                                                                        prefetch=0)),
            "uncompressed zarr shuffled": (mm_shuf, lambda: zarr_batches(path_raw, bs, perm)),
            "uncompressed zarr block-shuffled": (mm_shuf, lambda: zarr_batches(path_raw, bs, chunk_order)),
            "uncompressed zarr block-shuffled (zarr decoder)": (mm_shuf, lambda: zarr_batches(
                path_raw, bs, chunk_order, fast=False)),
            "int8 uncompressed zarr sequential": (mm_seq, lambda: zarr_batches(path8_raw, bs, seq)),
            "int8 uncompressed zarr shuffled": (mm_shuf, lambda: zarr_batches(path8_raw, bs, perm)),
            "int8 uncompressed zarr block-shuffled": (mm_shuf, lambda: zarr_batches(path8_raw, bs, chunk_order)),
            mm_step: (mm_step, lambda: with_compute(lambda: memmap_batches(workdir, bs, perm), step)),
            "zarr block-shuffled + compute": (mm_step, lambda: with_compute(
                lambda: zarr_batches(path, bs, chunk_order), step)),
            "zarr block-shuffled (no prefetch) + compute": (mm_step, lambda: with_compute(
                lambda: zarr_batches(path, bs, chunk_order, prefetch=0), step)),
            "int8 zarr block-shuffled + compute": (mm_step, lambda: with_compute(
                lambda: zarr_batches(path8, bs, chunk_order), step)),
            "uncompressed zarr block-shuffled + compute": (mm_step, lambda: with_compute(
                lambda: zarr_batches(path_raw, bs, chunk_order), step)),
            "int8 uncompressed zarr block-shuffled + compute": (mm_step, lambda: with_compute(
                lambda: zarr_batches(path8_raw, bs, chunk_order), step)),
            "webdataset stream (shuffled) + compute": (mm_step, lambda: with_compute(
                lambda: stream_batches(path, bs, shuffle=True, seed=0, epoch=0), step)),
        }
        rates = timed_interleaved({name: make for name, (_, make) in runs.items()}, args.repeats)
    mb = 10 * 3 * 32 * 32 * 2 / 2**20
    print(f"N={args.n}, batch {bs}, C={C}, 3x32x32 float16 grads ({mb * args.n:.0f} MiB raw), 1 torch thread; "
          f"zarr decodes in its thread pool; + compute: {args.compute_ms:g} ms of torch work per batch")
    print(f"  {'reader':<48} {'samples/s':>10} {'MiB/s':>8} {'vs memmap':>10}")
    for name, rate in rates.items():
        base = rates[runs[name][0]]
        print(f"  {name:<48} {rate:>10.0f} {rate * mb:>8.1f} {rate / base:>9.2f}x")
    print("  goal: >= 0.5x memmap (each row against the memmap row of the same order; + compute rows against "
          "memmap shuffled + compute)")


if __name__ == "__main__":
    main()
