"""The gradient store (format v2; v1 still read): a zarr v3 group with shard-aligned, resumable, validated writes.

Layout (see docs/store-format.md): arrays ``images`` (N, *S), ``labels`` (N,), ``grads`` (N, K, *S),
``index`` (N,) and ``done`` (num_shards,); v2 adds ``classes`` (N, K) (which class each of the K stored
gradients is for) and, with the int8 codec, ``grad_scales`` (N, K). The spec lives in the group attributes
(pagstore.spec). Readers always get decoded gradients (grad_dtype) and, from :meth:`GradientStore.read_classes`,
their class ids; v1 stores read as K = C with classes 0..C-1.
Every per-sample array uses one zarr shard per ``samples_per_shard`` rows along axis 0, so a writer that
owns shard ``k`` owns exactly one file per array and parallel writers on distinct shards never touch the
same file. ``done[k]`` (one tiny chunk per shard) is set only after shard ``k``'s data writes returned:
an interrupted writer leaves ``done[k]`` False and the shard is simply rewritten on resume.

Paths may be local paths or fsspec URLs (``file://``, ``memory://``, ``s3://``...).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.storage

from pagstore import __version__
from pagstore.chunk_compression import (  # noqa: F401  (compressors: public name, importable from here)
    DEFAULT_COMPRESSION,
    GRAD_ARRAYS,
    check_compression,
    compression_of,
    compressors,
)
from pagstore.classes import selection
from pagstore.shard_decode import FastLayout, fast_layout, read_rows
from pagstore.spec import DatasetInfo, SpecError, StoreSpec, arrays_of
# StoreError, StoreDataError, nonfinite_rows and round_mantissa stay importable from here (public names).
from pagstore.store_checks import (  # noqa: F401
    StoreDataError,
    StoreError,
    check_values,
    nonfinite_rows,
    round_mantissa,
    validate_shard,
)

CHUNK_BYTES = 1 << 20  # ~1 MiB inner chunks: random access decodes little
SHARD_BYTES = 32 << 20  # ~32 MiB shard files: few files for DVC, one per writer task
READ_MODES = ("r", "r+", "a")
CREATE_MODES = ("w", "w-", "a")


READ_ARRAYS = ("images", "labels", "grads")


def shard_file_key(name: str, ndim: int, k: int) -> str:
    """Key (relative to the store root) of shard ``k``'s file of array ``name`` (``ndim`` dimensions)."""
    return "/".join([name, "c", str(k)] + ["0"] * (ndim - 1))


def location_str(path: str | Path) -> str:
    """A path or URL as a string without a trailing slash (``file://`` stripped to a local path)."""
    s = str(path)
    if s.startswith("file://"):
        s = s[len("file://"):]
    return s.rstrip("/") or s


def is_url(path: str | Path) -> bool:
    return "://" in location_str(path)


def zarr_store(path: str | Path, read_only: bool) -> zarr.abc.store.Store:
    """The zarr storage object for a local path or an fsspec URL."""
    loc = location_str(path)
    if is_url(loc):
        return zarr.storage.FsspecStore.from_url(loc, read_only=read_only)
    return zarr.storage.LocalStore(loc, read_only=read_only)


_NOT_A_GROUP = (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError,
                zarr.errors.ContainsArrayError)


def _exists(path: str | Path) -> bool:
    try:
        zarr.open_group(zarr_store(path, read_only=True), mode="r")
    except _NOT_A_GROUP:
        return False
    return True


class GradientStore:
    """An open gradient store. Use :func:`open_store` / :func:`create_store` rather than the constructor."""

    def __init__(self, group: zarr.Group, spec: StoreSpec, location: str, mode: str) -> None:
        self._group = group
        self.spec = spec
        self.location = location
        self.mode = mode
        # write_empty_chunks: a shard of all fill values (e.g. all labels 0) is still stored, so a missing
        # shard file of a done shard always means a lost file, never "all zeros" (zarr skips empty chunks).
        self._arrays = {name: group[name].with_config({"write_empty_chunks": True})
                        for name in arrays_of(spec)}
        _check_arrays(self._arrays, spec, location)
        # local stores of pagstore's own layout decode without zarr's per-chunk copies (pagstore.shard_decode)
        self._fast = {name: fast_layout(arr) for name, arr in self._arrays.items() if name != "done"}
        self._present: set[tuple[str, int]] = set()  # (array, shard) whose file this handle saw exist

    def __repr__(self) -> str:
        return (f"GradientStore({self.location!r}, mode={self.mode!r}, N={self.num_samples}, "
                f"C={self.spec.num_classes}, shards={self.num_shards}, missing={len(self.missing_shards())})")

    @property
    def num_samples(self) -> int:
        return self.spec.num_samples

    @property
    def num_shards(self) -> int:
        return self.spec.num_shards

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.spec.sample_shape

    @property
    def grad_compression(self) -> str | None:
        """The chunk compression of ``grads`` as zarr's metadata records it ("zstd", "lz4hc", "none"; None for
        a codec list pagstore does not write)."""
        return compression_of(self._arrays["grads"])

    @property
    def arrays(self) -> dict[str, zarr.Array]:
        """The raw zarr arrays by name (read them directly for custom access patterns)."""
        return dict(self._arrays)

    def shard_slice(self, k: int) -> slice:
        """Rows of shard ``k`` as ``slice(start, stop)``."""
        return self.spec.shard_slice(k)

    def done_flags(self) -> np.ndarray:
        """bool (num_shards,): which shards are completely written."""
        return np.asarray(self._arrays["done"][:], dtype=bool)

    def missing_shards(self) -> list[int]:
        """Shards not yet completely written, ascending."""
        return [int(k) for k in np.flatnonzero(~self.done_flags())]

    def is_complete(self) -> bool:
        return not self.missing_shards()

    @property
    def num_stored_classes(self) -> int:
        """K, gradients stored per sample (= C for v1 and K = C stores)."""
        return self.spec.num_stored_classes

    def write_shard(self, k: int, images: np.ndarray, labels: np.ndarray, grads: np.ndarray,
                    index: np.ndarray, classes: np.ndarray | None = None) -> None:
        """Validate and write the whole shard ``k``, then mark it done.

        Args:
            images: (n, *S) uint8 (or float32 for "raw" stores), n = rows of shard k.
            labels: (n,) integers in [0, C).
            grads: (n, K, *S) finite floats; cast to the store's grad dtype (overflow is rejected) or
                encoded by its codec.
            index: (n,) non-negative integers, the samples' indices in the original dataset.
            classes: (n, K) the class of each stored gradient (v2; None means 0..C-1, K = C only).
        Raises:
            StoreError naming the shard and the global sample index of the first offending sample.
        """
        if self.mode == "r":
            raise StoreError(f"{self.location}: opened read-only (mode 'r'); open with mode 'r+' or 'a' to write")
        sl = self.shard_slice(k)
        data = validate_shard(self.spec, k, sl, images, labels, grads, index, self.location, classes)
        for name in data:
            self._arrays[name][sl] = data[name]
        # Only now: a writer killed above leaves done[k] False and the shard is redone on resume.
        self._arrays["done"][k] = True

    def read(self, indices: Sequence[int] | np.ndarray | slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``indices`` in the given order: images (n, *S), labels int64 (n,), grads (n, K, *S) decoded to
        grad_dtype (as stored for codec "raw"); the class of grads[:, j] is :meth:`read_classes`' column j."""
        stored = self.read_stored(indices)
        grads = stored["grads"]
        if self.spec.grad_codec == "int8":
            from pagstore.codec import decode_int8

            grads = decode_int8(grads, stored["grad_scales"], self.spec.grad_dtype)
        return stored["images"], stored["labels"], grads

    def read_stored(self, indices: Sequence[int] | np.ndarray | slice) -> dict[str, np.ndarray]:
        """Rows ``indices`` in the given order as stored, checked, not decoded: "images" (n, *S), "labels"
        int64 (n,), "grads" (n, K, *S) (int8 q for codec int8) and, for codec int8, "grad_scales" float32
        (n, K) (grads = q * scale). For readers that decode straight into their own buffers."""
        uniq, inverse = self._rows(indices)
        names = READ_ARRAYS + (("grad_scales",) if self.spec.grad_codec == "int8" else ())
        arrays = self._read_checked(names, uniq)
        # int8: q * scale is finite iff the scale is (q is an int8), so check the (n, K) scales, not n*K*D values
        check_values(self.spec, uniq, arrays[0], arrays[1], arrays[-1], self.location)
        return {name: a if inverse is None else a[inverse] for name, a in zip(names, arrays)}

    def read_classes(self, indices: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """int64 (n, K): the class ids of the stored gradients of the given rows (v1: 0..C-1 for every row)."""
        uniq, inverse = self._rows(indices)
        if self.spec.format_version == 1:
            n = len(uniq) if inverse is None else len(inverse)
            return np.broadcast_to(np.arange(self.num_classes, dtype=np.int64), (n, self.num_classes)).copy()
        cl = self._read_checked(("classes",), uniq)[0].astype(np.int64)
        bad = np.flatnonzero(((cl < 0) | (cl >= self.num_classes)).any(axis=1))
        if bad.size:
            row = int(uniq[bad[0]])
            raise StoreDataError(f"{self.location}: sample {row} (shard {row // self.spec.samples_per_shard}): "
                                 f"classes {cl[bad[0]].tolist()} outside [0, {self.num_classes}); run "
                                 f"`pagstore verify {self.location}`")
        return cl if inverse is None else cl[inverse]

    def read_index(self, indices: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Original dataset indices (int64) of the given rows."""
        uniq, inverse = self._rows(indices)
        index = self._read_checked(("index",), uniq)[0]
        return index if inverse is None else index[inverse]

    def _rows(self, indices: Sequence[int] | np.ndarray | slice) -> tuple[np.ndarray, np.ndarray | None]:
        """(sorted unique rows to decode, positions restoring the asked order or None if already sorted)."""
        if isinstance(indices, slice):
            indices = np.arange(*indices.indices(self.num_samples))
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_samples):
            bad = int(idx[(idx < 0) | (idx >= self.num_samples)][0])
            raise IndexError(f"{self.location}: sample index {bad} out of range [0, {self.num_samples})")
        if idx.size < 2 or bool((np.diff(idx) > 0).all()):
            return idx, None
        return np.unique(idx, return_inverse=True)

    def _read_checked(self, names: Sequence[str], rows: np.ndarray) -> list[np.ndarray]:
        """``_read_rows_many`` for sorted unique ``rows``; a lost or undecodable shard file -> StoreDataError
        naming the file, shard and sample range (never zarr's bare exception or silent fill values)."""
        shards = [int(k) for k in np.unique(rows // self.spec.samples_per_shard)]
        self._check_files(names, shards)
        try:
            return _read_rows_many([self._arrays[n] for n in names], rows, [self._fast.get(n) for n in names])
        except Exception as exc:  # zarr/blosc/crc32c raise assorted types for corrupt bytes
            raise self._decode_error(names, shards, exc) from None

    def _check_files(self, names: Sequence[str], shards: Sequence[int]) -> None:
        """One existence check per (array, shard) per handle: a done shard whose file is gone must not
        read as the fill value. Shards not yet done may lack files (they read as zeros, as before)."""
        todo = [(n, k) for k in shards for n in names if (n, k) not in self._present]
        if not todo:
            return
        keys = [shard_file_key(n, self._arrays[n].ndim, k) for n, k in todo]
        found = zarr.core.sync.sync(_gather([self._group.store.exists(key) for key in keys]))
        lost = [(nk, key) for nk, key, ok in zip(todo, keys, found) if not ok]
        self._present.update(nk for nk, _, ok in zip(todo, keys, found) if ok)
        if lost:
            done = self.done_flags()
            for (name, k), key in lost:
                if done[k]:
                    sl = self.shard_slice(k)
                    raise StoreDataError(f"{self.location}/{key}: shard {k} of {name!r} (samples {sl.start}.."
                                         f"{sl.stop - 1}) is marked done but its file is missing; run "
                                         f"`pagstore verify {self.location}`")

    def _decode_error(self, names: Sequence[str], shards: Sequence[int], exc: Exception) -> StoreDataError:
        """Error path only: re-read the touched shards one by one to name the one that fails."""
        for k in shards:
            sl = self.shard_slice(k)
            for name in names:
                try:
                    self._arrays[name][sl]
                except Exception as one:
                    key = shard_file_key(name, self._arrays[name].ndim, k)
                    return StoreDataError(f"{self.location}/{key}: cannot decode shard {k} of {name!r} (samples "
                                          f"{sl.start}..{sl.stop - 1}): {type(one).__name__}: {one}; run "
                                          f"`pagstore verify {self.location}`")
        return StoreDataError(f"{self.location}: cannot read shards {list(shards)[:20]} of {list(names)}: "
                              f"{type(exc).__name__}: {exc}; run `pagstore verify {self.location}`")


def _read_rows_many(arrays: list[zarr.Array], rows: np.ndarray,
                    layouts: Sequence[FastLayout | None] | None = None) -> list[np.ndarray]:
    """[arr[rows] for arr in arrays] for sorted unique ``rows``, decoding each touched chunk once.

    zarr's orthogonal selection on sharded arrays decodes per requested row (measured 60x slower than
    this for 256 rows over 16 chunks), so runs of touched chunks are read as plain slices instead: by
    :func:`pagstore.shard_decode.read_rows` where the array has a fast layout, else all awaited together
    in one round trip through zarr's event loop. Either way the chunks decode in parallel threads.
    """
    if rows.size == 0:
        return [np.empty((0, *a.shape[1:]), dtype=a.dtype) for a in arrays]
    layouts = list(layouts) if layouts is not None else [None] * len(arrays)
    jobs, picks, fast, fast_spans = [], [], [], []
    for i, arr in enumerate(arrays):
        chunk = int(arr.chunks[0])
        touched = np.unique(rows // chunk)
        for run in np.split(touched, np.flatnonzero(np.diff(touched) > 1) + 1):
            start, stop = int(run[0]) * chunk, min((int(run[-1]) + 1) * chunk, arr.shape[0])
            sel = rows[(rows >= start) & (rows < stop)]
            picks.append((i, None if sel.size == stop - start else sel - start))
            if layouts[i] is not None:
                fast.append(layouts[i])
                fast_spans.append((start, stop))
                jobs.append(None)
            else:
                jobs.append(arr.async_array.getitem(slice(start, stop)))
    slow = iter(zarr.core.sync.sync(_gather([j for j in jobs if j is not None])) if any(j is not None for j in jobs) else [])
    quick = iter(read_rows(fast, fast_spans) if fast else [])
    out: list[list[np.ndarray]] = [[] for _ in arrays]
    for job, (i, sel) in zip(jobs, picks):
        block = np.asarray(next(quick) if job is None else next(slow))
        out[i].append(block if sel is None else block[sel])
    return [parts[0] if len(parts) == 1 else np.concatenate(parts) for parts in out]


async def _gather(jobs: list[Any]) -> list[Any]:
    import asyncio

    return list(await asyncio.gather(*jobs))


def open_store(path: str | Path, mode: str = "r") -> GradientStore:
    """Open an existing store. ``mode``: "r" read-only, "r+" read/write, "a" read/write (must exist here;
    use :func:`create_store` with mode "a" to open-or-create)."""
    if mode not in READ_MODES:
        raise StoreError(f"open_store mode must be one of {READ_MODES}, got {mode!r} "
                         f"(use create_store for modes {CREATE_MODES})")
    loc = location_str(path)
    try:
        group = zarr.open_group(zarr_store(loc, read_only=mode == "r"), mode="r" if mode == "r" else "r+")
    except _NOT_A_GROUP:
        raise StoreError(f"{loc}: no gradient store here (no zarr group found)") from None
    spec = StoreSpec.from_attrs(group.attrs.asdict(), where=loc)
    try:
        return GradientStore(group, spec, loc, mode)
    except KeyError as exc:
        raise StoreError(f"{loc}: array {exc} missing from the store") from None


def create_store(path: str | Path, mode: str = "w-", *, num_samples: int, num_classes: int,
                 sample_shape: Sequence[int], image_dtype: str = "uint8", grad_dtype: str = "float16",
                 dataset: dict[str, Any], source: dict[str, Any],
                 samples_per_shard: int | None = None, grad_mantissa_bits: int | None = None,
                 num_target_classes: int | None = None, class_seed: int = 0, grad_codec: str = "raw",
                 grad_compression: str = DEFAULT_COMPRESSION, format_version: int = 2) -> GradientStore:
    """Create a store (or, with mode "a", reopen a matching existing one to resume).

    Args:
        mode: "w-" fail if it exists; "w" replace an existing store; "a" open if it exists (its spec must
            match these arguments, else StoreError naming the differing keys) or create it.
        sample_shape: S, e.g. (3, 32, 32); images are (num_samples, *S), grads (num_samples, C, *S).
        dataset: name, fingerprint, class_names (num_classes of them), split.
        source: the gradient source's ``describe()``: a dict with at least "name".
        samples_per_shard: rows per shard; default sized so a grads shard is ~32 MiB.
        grad_mantissa_bits: round grads to this many mantissa bits before storing (None: keep full
            grad_dtype precision). 7 with float16 costs ~1e-6 of cosine and saves ~1/4 of the bytes.
        num_target_classes: K of the C classes stored per sample (None: all C); K < C needs the classes
            of each sample at write time (:func:`pagstore.classes.choose_classes` with ``class_seed``).
        class_seed: recorded in the spec's class_selection (K < C).
        grad_codec: "raw" (grad_dtype values) or "int8" (int8 values and a float32 scale per (sample, class)).
        grad_compression: chunk compression of ``grads`` (and ``grad_scales``): "zstd" (default), "lz4hc" or
            "none" (raw bytes + crc32c; see pagstore.chunk_compression). Recorded in zarr's codec metadata.
        format_version: 2; 1 writes the old layout (K = C, raw only: for tests and `pagstore migrate`).
    """
    if mode not in CREATE_MODES:
        raise StoreError(f"create_store mode must be one of {CREATE_MODES}, got {mode!r}")
    loc = location_str(path)
    try:
        check_compression(grad_compression)
    except ValueError as exc:
        raise StoreError(f"{loc}: {exc}") from None
    if format_version == 1 and grad_compression != DEFAULT_COMPRESSION:
        raise StoreError(f"{loc}: format_version 1 stores use grad_compression {DEFAULT_COMPRESSION!r}")
    spec = _new_spec(num_samples, num_classes, sample_shape, image_dtype, grad_dtype, dataset, source,
                     samples_per_shard, loc, grad_mantissa_bits,
                     {"num_target_classes": num_target_classes, "class_selection": selection(num_classes,
                      num_target_classes, class_seed), "grad_codec": grad_codec, "format_version": format_version})
    exists = _exists(loc)
    if exists and mode == "w-":
        raise StoreError(f"{loc}: a store already exists (mode 'w-'); use mode 'a' to resume or 'w' to replace it")
    if exists and mode == "a":
        store = open_store(loc, "r+")
        diff = _spec_differences(store.spec, spec, fixed_shard=samples_per_shard is not None)
        if store.grad_compression != grad_compression:  # zarr's metadata, not the spec, holds it
            diff.append(f"grad_compression: existing {store.grad_compression!r} != requested {grad_compression!r}")
        if diff:
            raise StoreError(f"{loc}: existing store does not match the requested one: {'; '.join(diff)} "
                             "(use mode 'w' to replace it)")
        return store
    if not exists and not is_url(loc) and Path(loc).exists() and any(Path(loc).iterdir()):
        # "w" truncates: never wipe a directory that is not a store.
        raise StoreError(f"{loc}: exists, is not empty and is not a gradient store; refusing to overwrite it")
    group = zarr.open_group(zarr_store(loc, read_only=False), mode="w")
    _create_arrays(group, spec, grad_compression)
    group.attrs.put(spec.to_attrs())
    return GradientStore(group, spec, loc, "r+")


def auto_layout(grad_sample_bytes: int, num_samples: int, samples_per_shard: int | None) -> tuple[int, int]:
    """(chunk_rows, samples_per_shard): chunks of ~1 MiB of grads, shards of ~32 MiB, chunk divides shard."""
    per_chunk = max(1, CHUNK_BYTES // max(1, grad_sample_bytes))
    if samples_per_shard is None:
        chunk = min(per_chunk, num_samples)
        shard = chunk * max(1, SHARD_BYTES // (chunk * grad_sample_bytes))
        shard = min(shard, chunk * math.ceil(num_samples / chunk))
        return chunk, shard
    chunk = max(d for d in range(1, min(per_chunk, samples_per_shard) + 1) if samples_per_shard % d == 0)
    return chunk, samples_per_shard


def _new_spec(num_samples: int, num_classes: int, sample_shape: Sequence[int], image_dtype: str,
              grad_dtype: str, dataset: dict[str, Any], source: dict[str, Any],
              samples_per_shard: int | None, loc: str, grad_mantissa_bits: int | None = None,
              layout: dict[str, Any] | None = None) -> StoreSpec:
    missing = [k for k in ("name", "fingerprint", "class_names", "split") if k not in dataset]
    if missing:
        raise StoreError(f"{loc}: dataset is missing key(s) {missing}")
    class_names = tuple(str(c) for c in dataset["class_names"])
    if len(class_names) != num_classes:
        raise StoreError(f"{loc}: num_classes={num_classes} but dataset has {len(class_names)} class_names")
    try:  # stored as JSON attributes: normalise now (tuples -> lists) so resume comparisons are exact
        source = json.loads(json.dumps(dict(source), sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{loc}: source parameters must be JSON-serialisable ({exc})") from None
    shape = tuple(int(d) for d in sample_shape)
    layout = dict(layout or {})
    if layout.get("num_target_classes") == num_classes:
        layout["num_target_classes"] = None  # K = C is stored as C either way; one spelling for resume checks
    k = layout.get("num_target_classes") or num_classes
    itemsize = 1 if layout.get("grad_codec") == "int8" else np.dtype(
        grad_dtype if grad_dtype in ("float16", "float32") else "float32").itemsize
    grad_bytes = k * math.prod(shape) * itemsize
    if samples_per_shard is not None and samples_per_shard < 1:
        raise StoreError(f"{loc}: samples_per_shard must be >= 1, got {samples_per_shard}")
    _, sps = auto_layout(grad_bytes, max(1, num_samples), samples_per_shard)
    try:
        return StoreSpec(
            num_samples=int(num_samples), sample_shape=shape, image_dtype=image_dtype, grad_dtype=grad_dtype,
            pixel_space="unit" if image_dtype == "uint8" else "raw", samples_per_shard=sps,
            dataset=DatasetInfo(name=str(dataset["name"]), fingerprint=str(dataset["fingerprint"]),
                                class_names=class_names, split=str(dataset["split"])),
            source=dict(source), created_by=f"pagstore {__version__}", grad_mantissa_bits=grad_mantissa_bits,
            **layout,  # no created_at: identical inputs must give byte-identical stores (issue 15)
        )
    except SpecError as exc:
        raise StoreError(f"{loc}: {exc}") from None


def _spec_differences(old: StoreSpec, new: StoreSpec, fixed_shard: bool) -> list[str]:
    a, b = old.to_attrs(), new.to_attrs()
    keys = ["format_version", "num_samples", "sample_shape", "image_dtype", "grad_dtype", "grad_mantissa_bits",
            "dataset", "source"] + [k for k in ("num_target_classes", "class_selection", "grad_codec") if k in b]
    if fixed_shard:
        keys.append("samples_per_shard")
    return [f"{k}: existing {a.get(k)!r} != requested {b[k]!r}" for k in keys if a.get(k) != b[k]]


def _create_arrays(group: zarr.Group, spec: StoreSpec, grad_compression: str = DEFAULT_COMPRESSION) -> None:
    n, s, sps = spec.num_samples, spec.sample_shape, spec.samples_per_shard
    grad_bytes = math.prod(spec.grad_shape) * np.dtype(spec.stored_grad_dtype).itemsize
    chunk, _ = auto_layout(grad_bytes, n, sps)
    per_row = {"images": (s, spec.image_dtype, chunk), "grads": (spec.grad_shape, spec.stored_grad_dtype, chunk),
               "labels": ((), "int64", sps), "index": ((), "int64", sps)}
    if spec.format_version >= 2:
        per_row["classes"] = ((spec.num_stored_classes,), "int32", sps)
        if spec.grad_codec == "int8":
            per_row["grad_scales"] = ((spec.num_stored_classes,), "float32", sps)
    for name, (rest, dtype, rows) in per_row.items():
        # images, labels, ... stay zstd: a small part of the bytes, and the option is about the gradients
        compression = grad_compression if name in GRAD_ARRAYS else DEFAULT_COMPRESSION
        group.create_array(name, shape=(n, *rest), dtype=dtype, chunks=(rows, *rest), shards=(sps, *rest),
                           compressors=compressors(compression), fill_value=0, dimension_names=None)
    # One chunk per flag so concurrent writers of distinct shards never rewrite the same object.
    group.create_array("done", shape=(spec.num_shards,), dtype="bool", chunks=(1,), fill_value=False,
                       compressors=None)


def _check_arrays(arrays: dict[str, zarr.Array], spec: StoreSpec, loc: str) -> None:
    n, k = spec.num_samples, spec.num_stored_classes
    expected = {"images": ((n, *spec.sample_shape), spec.image_dtype), "labels": ((n,), "int64"),
                "grads": ((n, k, *spec.sample_shape), spec.stored_grad_dtype), "index": ((n,), "int64"),
                "done": ((spec.num_shards,), "bool"), "classes": ((n, k), "int32"),
                "grad_scales": ((n, k), "float32")}
    for name in arrays:
        shape, dtype = expected[name]
        arr = arrays[name]
        if tuple(arr.shape) != shape or np.dtype(arr.dtype) != np.dtype(dtype):
            raise StoreError(f"{loc}: array {name!r} is {arr.dtype} {tuple(arr.shape)}, the spec says "
                             f"{dtype} {shape}")
        if name != "done" and arr.shards is not None and arr.shards[0] != spec.samples_per_shard:
            raise StoreError(f"{loc}: array {name!r} has shards of {arr.shards[0]} rows, the spec says "
                             f"samples_per_shard={spec.samples_per_shard}")

