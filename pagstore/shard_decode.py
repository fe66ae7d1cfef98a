"""Fast local reads of the store's shard files: each inner chunk decoded by blosc, or for uncompressed
chunks read by the kernel, straight into the output array; the chunks of a read in parallel threads.

zarr's own read path decodes a chunk into a fresh buffer and copies it into the result, with event-loop
overhead per chunk: profiled at about 0.4x of what blosc alone decodes (docs/store-format.md). This reader
handles exactly the layouts pagstore writes (zarr v3 ``sharding_indexed`` along axis 0, inner chunks
bytes(little) -> blosc -> crc32c or, with ``grad_compression: "none"``, bytes(little) -> crc32c; index
bytes(little) -> crc32c at the end of the shard file) on a local directory. :func:`fast_layout` says None
for anything else (URLs, other codecs), and the caller uses zarr.
Integrity is the same as zarr's: every chunk's and the index's crc32c are checked; a mismatch raises
ValueError (the store turns it into StoreDataError naming the file).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec

ENABLED = True  # False: every read goes through zarr (benchmarks compare both; arrays opened later see it)
_EMPTY = 2**64 - 1  # an index entry (offset, length) of an unwritten chunk
_blosc = numcodecs.Blosc()  # decode reads cname/shuffle/typesize from each blosc frame header
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class FastLayout:
    """What the fast reader needs of one array: its directory, rows per shard and per inner chunk."""

    root: Path  # the array's directory (shard files under c/)
    shard_rows: int
    chunk_rows: int
    dtype: np.dtype
    row_shape: tuple[int, ...]  # shape of one row (axis 0 removed)
    compressed: bool = True  # blosc between bytes and crc32c; False: a chunk is its raw bytes, then their crc32c


def fast_layout(arr: zarr.Array) -> FastLayout | None:
    """The array's layout if it is one this reader decodes exactly (see module doc), else None."""
    store = arr.store
    meta = arr.metadata
    if not ENABLED or not isinstance(store, zarr.storage.LocalStore) or getattr(meta, "zarr_format", 2) != 3:
        return None
    codecs = tuple(meta.codecs)
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sh = codecs[0]
    inner, index = tuple(sh.codecs), tuple(sh.index_codecs)
    dtype = np.dtype(arr.dtype)
    little = ("little", "Endian.little")
    compressed = len(inner) == 3 and isinstance(inner[1], BloscCodec)
    raw = len(inner) == 2 and hasattr(os, "preadv")  # (no preadv, e.g. Windows: zarr reads it)
    ok = ((compressed or raw) and isinstance(inner[0], BytesCodec)
          and (str(inner[0].endian) in little or (inner[0].endian is None and dtype.itemsize == 1))
          and isinstance(inner[-1], Crc32cCodec)
          and len(index) == 2 and isinstance(index[0], BytesCodec) and str(index[0].endian) in little
          and isinstance(index[1], Crc32cCodec) and str(sh.index_location) in ("end", "ShardingCodecIndexLocation.end")
          and tuple(sh.chunk_shape[1:]) == tuple(arr.shape[1:]) and tuple(arr.shards[1:]) == tuple(arr.shape[1:])
          and meta.fill_value == 0)
    if not ok or dtype.byteorder == ">":
        return None
    return FastLayout(Path(store.root) / arr.path, int(arr.shards[0]), int(sh.chunk_shape[0]), dtype,
                      tuple(int(d) for d in arr.shape[1:]), compressed)


def _executor() -> ThreadPoolExecutor:
    """One decode pool per process (a forked DataLoader worker must not reuse its parent's threads)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                                     thread_name_prefix="pagstore-decode"))
        return _pool[1]


def read_rows(layouts: list[FastLayout], spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """Rows [start, stop) of each (layout, span) pair, decoded: one (stop - start, *row_shape) array each.

    All touched inner chunks of all pairs are decoded in parallel, each straight into its rows of the
    result (a chunk that overhangs the read goes through one chunk-sized temporary). Uncompressed chunks are
    read by the kernel into those rows' memory and checksummed there: no intermediate buffer at all.
    """
    outs = [np.zeros((stop - start, *lay.row_shape), dtype=lay.dtype) for lay, (start, stop) in zip(layouts, spans)]
    jobs = []
    for lay, (start, stop), out in zip(layouts, spans, outs):
        for k in range(start // lay.shard_rows, -(-stop // lay.shard_rows)):
            jobs.append((lay, k, start, stop, out))
    futures = [_executor().submit(_read_shard_part, *job) for job in jobs]
    for f in futures:
        f.result()  # re-raises a decode or checksum error
    return outs


def _read_shard_part(lay: FastLayout, k: int, start: int, stop: int, out: np.ndarray) -> None:
    """Decode the chunks of shard ``k`` that hold rows [start, stop) into ``out`` (rows start.. of the read)."""
    key = "/".join(["c", str(k)] + ["0"] * len(lay.row_shape))
    n_chunks = lay.shard_rows // lay.chunk_rows
    try:
        fd = os.open(lay.root / key, os.O_RDONLY)
    except FileNotFoundError:
        return  # an unwritten shard reads as the fill value 0, as in zarr (the store checks done shards' files)
    try:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 16 * n_chunks + 4, size - 16 * n_chunks - 4)
        _check_crc(tail, f"{lay.root / key} (shard index)")
        index = np.frombuffer(tail, dtype="<u8", count=2 * n_chunks).reshape(n_chunks, 2)
        shard0 = k * lay.shard_rows
        first = max(start, shard0) - shard0
        last = min(stop, shard0 + lay.shard_rows) - shard0
        for c in range(first // lay.chunk_rows, -(-last // lay.chunk_rows)):
            offset, length = (int(v) for v in index[c])
            lo, hi = shard0 + c * lay.chunk_rows, shard0 + (c + 1) * lay.chunk_rows  # the chunk's rows
            if offset == _EMPTY:
                continue  # out is zero-filled
            a, b = max(lo, start), min(hi, stop)  # rows of this chunk the read wants
            whole = (a, b) == (lo, hi)
            # a chunk that overhangs the read (or the array's end, where chunks are padded) goes through tmp
            dest = out[a - start:b - start] if whole else np.empty((lay.chunk_rows, *lay.row_shape), lay.dtype)
            what = f"{lay.root / key} (chunk {c})"
            if lay.compressed:
                blob = os.pread(fd, length, offset)
                _check_crc(blob, what)
                _blosc.decode(memoryview(blob)[:-4], out=dest)
            else:
                _read_raw_chunk(fd, offset, length, dest, what)
            if not whole:
                out[a - start:b - start] = dest[a - lo:b - lo]
    finally:
        os.close(fd)


def _read_raw_chunk(fd: int, offset: int, length: int, dest: np.ndarray, what: str) -> None:
    """Read an uncompressed chunk (its raw bytes, then their 4-byte crc32c) straight into ``dest``'s memory,
    a C-contiguous (chunk_rows, *row_shape) array, and check the crc32c there."""
    if not dest.flags.c_contiguous:  # reshape would copy, and the read would land in the copy
        raise AssertionError(f"{what}: destination rows are not contiguous")
    data = dest.reshape(-1).view(np.uint8)  # a view of dest's memory
    if length != data.nbytes + 4:
        raise ValueError(f"{what}: the shard index says {length} bytes, an uncompressed chunk has {data.nbytes + 4}")
    crc = bytearray(4)
    got = os.preadv(fd, [data, crc], offset)  # one syscall, no buffer between the page cache and dest
    if got != length:
        raise ValueError(f"{what}: read {got} of {length} bytes (truncated shard file)")
    # google_crc32c takes the numpy view without a copy, but holds the GIL for anything but bytes: threads
    # overlap their preadv copies, not their checksums (hardware crc32c: ~10 GB/s per core, measured)
    _compare_crc(google_crc32c.value(data), bytes(crc), what)


def _check_crc(data: bytes, what: str) -> None:
    _compare_crc(google_crc32c.value(data[:-4]), data[-4:], what)


def _compare_crc(computed: int, stored: bytes, what: str) -> None:
    if np.uint32(computed).tobytes() != stored:
        raise ValueError(f"{what}: crc32c checksum does not match the stored one")
