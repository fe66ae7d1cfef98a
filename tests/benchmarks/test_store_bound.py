"""benchmarks/bench_store_bound.py: the entropy bound behind issue 15's size goal is computed correctly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_store_bound.py"


def _bench():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("bench_store_bound", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_entropy_of_known_distributions() -> None:
    b = _bench()
    four = np.tile(np.arange(4), 250).reshape(100, 10)  # 4 equiprobable symbols: 2 bits
    assert abs(b.entropy_bits(four, per_position=False) - 2.0) < 1e-9
    constant_columns = np.tile(np.arange(10), (100, 1))  # every column constant: 0 bits per position
    assert b.entropy_bits(constant_columns, per_position=True) == 0.0
    assert abs(b.entropy_bits(constant_columns, per_position=False) - np.log2(10)) < 1e-9


def test_coarsest_step_is_the_edge_of_the_cosine_goal() -> None:
    b = _bench()
    rows = np.random.default_rng(0).normal(size=(200, 64))
    ident = (lambda r: r)
    step = b.coarsest_step(rows, ident, ident)
    ok = b.cosines(rows, b.quantise(rows, step)[1])
    assert ok.mean() >= b.MEAN_COS and ok.min() >= b.MIN_COS
    worse = b.cosines(rows, b.quantise(rows, step * 1.2)[1])
    assert worse.mean() < b.MEAN_COS or worse.min() < b.MIN_COS


def test_dct_helps_smooth_gradients_and_not_white_noise() -> None:
    b = _bench()
    rng = np.random.default_rng(0)
    white = rng.normal(size=(300, 1, 8, 8))
    smooth = white.repeat(2, axis=2).repeat(2, axis=3)  # 16x16 made of 2x2 blocks: correlated pixels
    fwd, inv = b.dct_pair((1, 16, 16))
    flat = smooth.reshape(300, -1)
    assert np.allclose(inv(fwd(flat)), flat)

    def rates(rows: np.ndarray, shape: tuple[int, ...]) -> tuple[float, float]:
        f, i = b.dct_pair(shape)
        ident = (lambda r: r)
        s = b.entropy_bits(b.quantise(rows, b.coarsest_step(rows, ident, ident))[0], per_position=False)
        d = b.entropy_bits(b.quantise(f(rows), b.coarsest_step(rows, f, i))[0], per_position=True)
        return s, d

    s_white, d_white = rates(white.reshape(300, -1), (1, 8, 8))
    s_smooth, d_smooth = rates(flat, (1, 16, 16))
    assert d_smooth < s_smooth - 1.0  # a 4x redundancy the transform finds
    assert abs(d_white - s_white) < 1.0  # nothing to find in white noise (per-position histograms of 300)
