"""How small can a stored gradient get at issue 15's fidelity goal? An entropy bound, on real stores.

The goal was <= 0.15x the float32 reference bytes at mean cosine >= 0.9999 and minimum >= 0.999 to the
float gradients. Cosine fidelity fixes the quantisation noise a codec may add: 1 - cos ~ |e|^2 / (2 |g|^2),
so a mean cosine of 0.9999 allows a relative noise energy of about 2e-4 per row. This script finds, for
each store, the coarsest uniform quantiser step (relative to each row's RMS) that still meets both cosine
goals, then measures the empirical entropy of the quantised values, which is what an ideal entropy coder
behind that quantiser would spend (bits per value; 32 bits per value is the float32 reference):

- "scalar": the values as they are (what int8 + zstd approximates: one histogram for all positions);
- "DCT": after an orthonormal 2-D DCT of each channel (the same noise energy, one histogram per
  coefficient position), which wins exactly when the gradients are spatially smooth.

The int8 codec's own bytes (its values and scales under the store's blosc-zstd) are printed beside them. Rates are per stored value, plus one
float32 scale per row. If even the DCT bound is above 0.15x, no quantise-and-entropy-code codec of this
kind reaches the goal on that store; that bound, not the codec, is what the note reports.

    python benchmarks/bench_store_bound.py --store stores/sbg --store stores/cm [--n 1024]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MEAN_COS, MIN_COS = 0.9999, 0.999


def quantise(rows: np.ndarray, rel_step: float) -> tuple[np.ndarray, np.ndarray]:
    """rows (n, D) float64 -> (integer symbols (n, D), decoded rows (n, D)) at step rel_step * row RMS."""
    rms = np.sqrt((rows ** 2).mean(axis=1, keepdims=True))
    step = rel_step * np.where(rms > 0, rms, 1.0)
    q = np.rint(rows / step)
    return q.astype(np.int64), q * step


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (n, D) arrays; rows of zeros count as 1 (nothing to lose)."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 0) & (nb > 0)
    out = np.ones(len(a))
    out[ok] = (a[ok] * b[ok]).sum(axis=1) / (na[ok] * nb[ok])
    return out


def coarsest_step(rows: np.ndarray, to_coeffs, from_coeffs) -> float:
    """The largest relative step (bisection in log) whose decoded rows meet both cosine goals."""
    coeffs = to_coeffs(rows)
    lo, hi = 1e-4, 4.0
    for _ in range(40):
        mid = np.sqrt(lo * hi)
        _, dec = quantise(coeffs, mid)
        c = cosines(rows, from_coeffs(dec))
        lo, hi = (mid, hi) if (c.mean() >= MEAN_COS and c.min() >= MIN_COS) else (lo, mid)
    return lo


def entropy_bits(symbols: np.ndarray, per_position: bool) -> float:
    """Empirical entropy in bits per value of integer symbols (n, D): one histogram, or one per column."""
    cols = [symbols[:, j] for j in range(symbols.shape[1])] if per_position else [symbols.ravel()]
    total = 0.0
    for col in cols:
        _, counts = np.unique(col, return_counts=True)
        p = counts / counts.sum()
        total += -(p * np.log2(p)).sum() * len(col)
    return total / symbols.size


def dct_pair(shape: tuple[int, ...]):  # noqa: ANN201
    """(forward, inverse) orthonormal 2-D DCT over the last two axes of rows reshaped to ``shape``."""
    from scipy.fft import dctn, idctn

    def fwd(rows: np.ndarray) -> np.ndarray:
        return dctn(rows.reshape(-1, *shape), axes=(-2, -1), norm="ortho").reshape(len(rows), -1)

    def inv(rows: np.ndarray) -> np.ndarray:
        return idctn(rows.reshape(-1, *shape), axes=(-2, -1), norm="ortho").reshape(len(rows), -1)

    return fwd, inv


def int8_zstd_ratio(grads: np.ndarray) -> float:
    """Bytes of the int8 codec's values and scales under the store's blosc (zstd 5, byte shuffle), over the
    float32 reference bytes of grads (n, K, *S). In memory: the store adds only its small shard indexes."""
    import numcodecs

    from pagstore.codec import encode_int8

    q, scales = encode_int8(grads)
    blosc = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    return (len(blosc.encode(q)) + len(blosc.encode(scales))) / (grads.size * 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", action="append", required=True, help="a pagstore (repeatable)")
    ap.add_argument("--n", type=int, default=1024, help="samples per store (the first n)")
    args = ap.parse_args()
    from pagstore.store import open_store

    print(f"goal: mean cos >= {MEAN_COS}, min >= {MIN_COS}; ratio = bits per value / 32 (+ one float32 scale "
          f"per row); goal ratio <= 0.15")
    print(f"{'store':<14}{'shape':<14}{'scalar bits':>12}{'ratio':>8}{'DCT bits':>10}{'ratio':>8}{'int8+zstd':>11}")
    for path in args.store:
        st = open_store(path)
        n = min(args.n, st.spec.num_samples)
        g = np.asarray(st.read(slice(0, n))[2], dtype=np.float64)  # (n, K, *S) decoded
        shape = g.shape[2:]
        rows = g.reshape(-1, int(np.prod(shape)))
        rows = rows[np.linalg.norm(rows, axis=1) > 0]
        scale_bits = 32 / rows.shape[1]
        ident = (lambda r: r)
        s_step = coarsest_step(rows, ident, ident)
        s_bits = entropy_bits(quantise(rows, s_step)[0], per_position=False)
        fwd, inv = dct_pair(shape)
        d_step = coarsest_step(rows, fwd, inv)
        d_bits = entropy_bits(quantise(fwd(rows), d_step)[0], per_position=True)
        i8 = int8_zstd_ratio(g.astype(np.float32))
        print(f"{Path(path).name:<14}{'x'.join(map(str, shape)):<14}{s_bits:>12.2f}{(s_bits + scale_bits) / 32:>8.3f}"
              f"{d_bits:>10.2f}{(d_bits + scale_bits) / 32:>8.3f}{i8:>11.3f}")


if __name__ == "__main__":
    main()
