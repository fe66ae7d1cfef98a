"""Validation of gradient-store data: what a writer may write and what a reader may return.

Writes are checked before anything touches disk (shapes, dtypes, label range, finiteness, float16
overflow), and every read is checked again (NaN/inf, labels out of range) so a damaged or hand-edited
store fails loudly with the sample and shard named instead of feeding wrong data to training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pagstore.spec import StoreSpec


class StoreError(ValueError):
    """A store cannot be opened/created as asked, or a write was rejected."""


class StoreDataError(StoreError):
    """Stored data are damaged: an undecodable or missing shard file, NaN/inf, an out-of-range label."""


_EXPONENT = {np.dtype(np.float16): (np.uint16, 0x7C00), np.dtype(np.float32): (np.uint32, 0x7F800000),
             np.dtype(np.float64): (np.uint64, 0x7FF0000000000000)}


def nonfinite_rows(x: np.ndarray) -> np.ndarray:
    """bool (n,): rows of x (n, ...) holding a NaN or inf. Tests the exponent bits (all ones = NaN/inf) as
    integers: ~6x faster than np.isfinite on float16, which numpy does not vectorise."""
    x = np.ascontiguousarray(x).reshape(x.shape[0], int(np.prod(x.shape[1:])))
    if x.dtype not in _EXPONENT:
        return ~np.isfinite(x).all(axis=1)
    uint, mask = _EXPONENT[x.dtype]
    return ((x.view(uint) & uint(mask)) == uint(mask)).any(axis=1)


_BLOCK = 1 << 16  # values per pass of any_nonfinite: its masked copy stays in the L2 cache


def any_nonfinite(x: np.ndarray) -> bool:
    """Whether x (any shape) holds a NaN or inf, in one cheap pass: with the sign bit cleared, a float's bits
    reach the all-ones exponent exactly when it is NaN or inf, so the blockwise max of the masked bits
    decides. About 4x faster than :func:`nonfinite_rows`, which the error path still uses to name the row."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.dtype not in _EXPONENT:
        return not bool(np.isfinite(flat).all())
    uint, mask = _EXPONENT[flat.dtype]
    bits = flat.view(uint)
    tmp = np.empty(min(bits.size, _BLOCK), dtype=uint)
    no_sign = uint(np.iinfo(uint).max >> 1)
    for start in range(0, bits.size, _BLOCK):
        part = bits[start:start + _BLOCK]
        np.bitwise_and(part, no_sign, out=tmp[:part.size])
        if tmp[:part.size].max() >= mask:
            return True
    return False


def check_values(spec: StoreSpec, rows: np.ndarray, images: np.ndarray, labels: np.ndarray, grads: np.ndarray,
                  loc: str) -> None:
    """Refuse rows a damaged or hand-edited store returns: NaN/inf grads (or float images), labels outside
    [0, C). One cheap pass per array (:func:`any_nonfinite`); the per-row scan runs only to name a bad row.
    rows (n,) are the store rows of the n read samples."""
    n = rows.size
    if n == 0:
        return
    bad = (labels < 0) | (labels >= spec.num_classes)
    if any_nonfinite(grads):
        bad |= nonfinite_rows(grads)
    if np.issubdtype(images.dtype, np.floating) and any_nonfinite(images):
        bad |= nonfinite_rows(images)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    row, k = int(rows[i]), int(rows[i]) // spec.samples_per_shard
    if not 0 <= labels[i] < spec.num_classes:
        what = f"label {int(labels[i])} is outside [0, {spec.num_classes})"
    elif not np.isfinite(grads[i]).all():
        what = "grads contain NaN or inf"
    else:
        what = "image contains NaN or inf"
    raise StoreDataError(f"{loc}: sample {row} (shard {k}): {what} ({int(bad.sum())} bad of the {n} samples "
                         f"read); run `pagstore verify {loc}`")


def validate_shard(spec: StoreSpec, k: int, sl: slice, images: Any, labels: Any, grads: Any, index: Any,
                    loc: str, classes: Any = None) -> dict[str, np.ndarray]:
    """Check one shard's data; return it in the stored dtypes (v2: with ``classes`` (n, K), and for codec
    int8 the encoded ``grads`` and their ``grad_scales``). Errors name the global sample index."""
    n = sl.stop - sl.start
    where = f"{loc}: shard {k} (samples {sl.start}..{sl.stop - 1})"
    arrs = {"images": np.asarray(images), "labels": np.asarray(labels), "grads": np.asarray(grads),
            "index": np.asarray(index)}
    shapes = {"images": (n, *spec.sample_shape), "labels": (n,), "grads": (n, *spec.grad_shape), "index": (n,)}
    for name, shape in shapes.items():
        if arrs[name].shape != shape:
            raise StoreError(f"{where}: {name} must have shape {shape}, got {arrs[name].shape}")
    im = arrs["images"]
    if spec.image_dtype == "uint8" and im.dtype != np.uint8:
        raise StoreError(f"{where}: images must be uint8 (pixel_space 'unit'), got {im.dtype}")
    if spec.image_dtype == "float32":
        if not np.issubdtype(im.dtype, np.floating):
            raise StoreError(f"{where}: images must be float32 (pixel_space 'raw'), got {im.dtype}")
        _check_finite(im, "images", sl.start, where)
    for name in ("labels", "index"):
        if not np.issubdtype(arrs[name].dtype, np.integer):
            raise StoreError(f"{where}: {name} must be integers, got {arrs[name].dtype}")
    lb = arrs["labels"].astype(np.int64)
    bad = np.flatnonzero((lb < 0) | (lb >= spec.num_classes))
    if bad.size:
        i = int(bad[0])
        raise StoreError(f"{where}: label {int(lb[i])} of sample {sl.start + i} is outside [0, {spec.num_classes})")
    ix = arrs["index"].astype(np.int64)
    if ix.size and ix.min() < 0:
        i = int(np.flatnonzero(ix < 0)[0])
        raise StoreError(f"{where}: index {int(ix[i])} of sample {sl.start + i} is negative")
    g = arrs["grads"]
    if not np.issubdtype(g.dtype, np.floating):
        raise StoreError(f"{where}: grads must be floating point, got {g.dtype}")
    _check_finite(g, "grads", sl.start, where)
    with np.errstate(over="ignore"):  # overflow is reported below, with the sample index
        stored = g.astype(spec.grad_dtype)
    if spec.grad_mantissa_bits is not None:
        stored = round_mantissa(stored, spec.grad_mantissa_bits)
    _check_finite(stored, f"grads (after casting to {spec.grad_dtype}: magnitude overflow; rescale them or "
                  "use grad_dtype float32)", sl.start, where)
    out = {"images": im.astype(spec.image_dtype), "labels": lb, "grads": stored, "index": ix}
    if spec.format_version == 1:
        return out
    out["classes"] = _check_classes(spec, classes, lb, n, sl.start, where)
    if spec.grad_codec == "int8":
        from pagstore.codec import encode_int8

        out["grads"], out["grad_scales"] = encode_int8(g)
    return out


def _check_classes(spec: StoreSpec, classes: Any, labels: np.ndarray, n: int, start: int, where: str) -> np.ndarray:
    """v2 ``classes`` of a shard: (n, K) distinct ints in [0, C); all C in order for K = C, true class first
    for K < C. None is accepted for K = C only (the identity)."""
    k, c = spec.num_stored_classes, spec.num_classes
    if classes is None:
        if k != c:
            raise StoreError(f"{where}: a store of K={k} < C={c} classes needs the classes (n, K) of each sample")
        return np.broadcast_to(np.arange(c, dtype=np.int64), (n, c)).copy()
    cl = np.asarray(classes)
    if cl.shape != (n, k) or not np.issubdtype(cl.dtype, np.integer):
        raise StoreError(f"{where}: classes must be integers of shape {(n, k)}, got {cl.dtype} {cl.shape}")
    cl = cl.astype(np.int64)
    if k == c:
        bad = np.flatnonzero((cl != np.arange(c)).any(axis=1))
        what = "must list classes 0..C-1 in order (K = C)"
    else:
        srt = np.sort(cl, axis=1)
        bad = np.flatnonzero((cl[:, 0] != labels) | (cl < 0).any(axis=1) | (cl >= c).any(axis=1)
                             | (np.diff(srt, axis=1) == 0).any(axis=1))
        what = f"must be K={k} distinct classes in [0, {c}) with the true class first"
    if bad.size:
        i = int(bad[0])
        raise StoreError(f"{where}: classes {cl[i].tolist()} of sample {start + i} {what}")
    return cl


def round_mantissa(x: np.ndarray, bits: int) -> np.ndarray:
    """Round float16/float32 values to ``bits`` mantissa bits (nearest, ties to even), as the same dtype.

    Zeroed low bits compress to almost nothing; the relative error per value is at most 2**-(bits + 1)
    (normal numbers; subnormals have fewer bits to begin with).
    """
    uint = {np.dtype(np.float16): np.uint16, np.dtype(np.float32): np.uint32}[x.dtype]
    drop = {np.uint16: 10, np.uint32: 23}[uint] - bits
    if drop <= 0:
        return x
    u = x.view(uint)
    one = uint(1)
    bias = ((u >> uint(drop)) & one) + uint((1 << (drop - 1)) - 1)
    mask = uint(~((1 << drop) - 1) & np.iinfo(uint).max)
    return ((u + bias) & mask).view(x.dtype)


def _check_finite(x: np.ndarray, what: str, start: int, where: str) -> None:
    bad = nonfinite_rows(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StoreError(f"{where}: {what} of sample {start + i} contain NaN or inf")
