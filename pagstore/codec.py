"""The v2 direction codec of stored gradients: int8 values with one float32 scale per (sample, class).

Only a stored gradient's direction is used (cosine alignment), so each (sample, class) row g (D values) is
stored as q = round(g / s) in int8 with s = max|g| / 127, and read back as q * s. The rounding error of a
value is at most s / 2, so the cosine to g stays close to 1 unless a few huge values dominate max|g|
(see benchmarks/bench_store_size.py for the measured cosines). A row of zeros keeps s = 0 (decodes to zeros).
Plain-zarr decoding is ``grads[:].astype("float32") * grad_scales[:][..., None, None, None]``.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127


def encode_int8(grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float grads (n, K, *S) -> (q int8 (n, K, *S), scales float32 (n, K)), q * scale ~ grads."""
    g = np.asarray(grads, dtype=np.float32)
    flat = g.reshape(g.shape[0], g.shape[1], -1)
    scales = (np.abs(flat).max(axis=2) / INT8_MAX).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1.0))
    q = np.rint(flat / safe[:, :, None])
    np.clip(q, -INT8_MAX, INT8_MAX, out=q)
    return q.astype(np.int8).reshape(g.shape), scales


def decode_int8(q: np.ndarray, scales: np.ndarray, dtype: str | np.dtype = np.float32,
                out: np.ndarray | None = None) -> np.ndarray:
    """(q int8 (n, K, *S), scales (n, K)) -> q * scale in ``dtype`` (n, K, *S), written into ``out`` if given."""
    n, k = q.shape[:2]
    if out is None:
        out = np.empty(q.shape, dtype=dtype)
    flat = out.reshape(n, k, -1)
    np.multiply(q.reshape(n, k, -1), scales.astype(np.float32)[:, :, None], out=flat, casting="unsafe")
    return out
