"""OI, CM and NN against brute-force references written independently (plain numpy loops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pagstore.config import ConfigError
from pagstore.sources import SourceError, build_source


def _all(split):
    return split.as_float(), split.labels, np.arange(len(split), dtype=np.int64)


def test_oi_matches_reference_and_records_choice(images_split):
    src = build_source("oi", {}, images_split, seed=3)
    x, y, idx = _all(images_split)
    g = src.compute(x, y, idx)
    chosen = src.describe()["representative_indices"]
    assert [int(images_split.labels[i]) for i in chosen] == [0, 1, 2]
    for i in range(len(x)):
        for c in range(3):
            np.testing.assert_array_equal(g[i, c], x[chosen[c]] - x[i])
    assert build_source("oi", {}, images_split, seed=3).describe() == src.describe()
    assert build_source("oi", {}, images_split, seed=4).describe()["representative_indices"] != chosen


def test_cm_matches_reference_with_image_norm_scale(images_split):
    src = build_source("cm", {"scale_to_image_norm": True}, images_split)
    x, y, idx = _all(images_split)
    flat = x.reshape(len(x), -1).astype(np.float64)
    means = np.stack([flat[y == c].mean(0) for c in range(3)])
    s = np.linalg.norm(flat, axis=1).mean() / np.linalg.norm(means, axis=1).mean()
    assert src.describe()["scale"] == pytest.approx(s, rel=1e-12)
    ref = (s * means)[None].astype(np.float32).reshape(1, 3, 1, 4, 4) - x[:, None]
    np.testing.assert_allclose(src.compute(x, y, idx), ref, rtol=0, atol=1e-6)
    plain = build_source("cm", {"scale_to_image_norm": False}, images_split)
    assert plain.describe()["scale"] == 1.0
    assert plain.describe()["class_means_digest"] == src.describe()["class_means_digest"]


def _nn_reference(train_x, subsets, x, idx):
    """Brute force: for each sample and class, the closest subset member that is neither x nor a copy of x."""
    out = np.empty((len(x), len(subsets)), dtype=np.int64)
    for i in range(len(x)):
        for c, members in enumerate(subsets):
            best, best_d = -1, np.inf
            for j in members:
                d = float(np.sqrt(((train_x[j].astype(np.float64) - x[i].astype(np.float64)) ** 2).sum()))
                if j == idx[i] or d == 0.0:
                    continue
                if d < best_d:
                    best, best_d = j, d
            out[i, c] = best
    return out


@pytest.mark.parametrize("subset_size", [0, 6])
def test_nn_matches_reference_and_never_returns_itself(images_split, subset_size):
    src = build_source("nn", {"subset_size": subset_size}, images_split, seed=1)
    x, y, idx = _all(images_split)
    subsets = src.subsets
    if subset_size:
        assert [len(s) for s in subsets] == [6, 6, 6]
    nb = src.neighbours(torch.from_numpy(x), torch.from_numpy(idx)).numpy()
    np.testing.assert_array_equal(nb, _nn_reference(x, subsets, x, idx))
    assert not (nb == idx[:, None]).any()
    # Sample 5 duplicates sample 2: neither may be the other's neighbour.
    assert nb[2, y[2]] != 5 and nb[5, y[5]] != 2
    g = src.compute(x, y, idx)
    ref = np.stack([x[nb[:, c]] for c in range(3)], axis=1) - x[:, None]
    np.testing.assert_array_equal(g, ref)
    assert (np.abs(g).reshape(len(x), 3, -1).sum(-1) > 0).all()


def test_sources_on_vectors_and_torch_inputs(vectors_split):
    x, y, idx = _all(vectors_split)
    for name in ("oi", "cm", "nn"):
        src = build_source(name, {}, vectors_split)
        g = src.compute(x, y, idx)
        assert g.shape == (30, 2, 2) and g.dtype == np.float32
        gt = src.compute(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(idx))
        assert isinstance(gt, torch.Tensor)
        np.testing.assert_array_equal(gt.numpy(), g)


def test_bad_inputs_are_named(images_split):
    with pytest.raises(ConfigError, match="subset_size"):
        build_source("nn", {"subset_size": -1}, images_split)
    with pytest.raises(ConfigError, match="bogus"):
        build_source("cm", {"bogus": 1}, images_split)
    with pytest.raises(SourceError, match="unknown gradient source 'xx'"):
        build_source("xx", {}, images_split)
    src = build_source("oi", {}, images_split)
    with pytest.raises(SourceError, match=r"expected \(1, 4, 4\)"):
        src.compute(np.zeros((2, 3, 4, 4), np.float32), np.zeros(2, np.int64), np.zeros(2, np.int64))
    lonely = build_source("nn", {"subset_size": 1}, images_split, seed=0)
    own = int(lonely.subsets[0][0])
    with pytest.raises(SourceError, match="class 0"):
        lonely.compute(images_split.as_float([own]), images_split.labels[[own]], np.array([own]))
