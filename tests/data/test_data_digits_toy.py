"""The two built-in datasets: sklearn digits (upsampled) and the paper's 2-D toy data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from pagstore.config import ConfigError
from pagstore.data import read_dataset
from pagstore.data.resize import resize_bicubic


def test_digits_shapes_range_and_stratified_split(tmp_path: Path) -> None:
    s = read_dataset("digits", {"image_size": 16, "test_fraction": 0.25, "seed": 0}, base_dir=tmp_path)
    tr, te = s["train"], s["test"]
    assert len(tr) + len(te) == 1797 and abs(len(te) - 0.25 * 1797) <= 1
    assert tr.images.shape[1:] == (1, 16, 16) and tr.images.dtype == np.uint8
    assert tr.images.max() == 255 and tr.images.min() == 0
    assert tr.class_names == tuple("0123456789")
    share_tr = np.bincount(tr.labels, minlength=10) / len(tr)
    share_te = np.bincount(te.labels, minlength=10) / len(te)
    assert np.abs(share_tr - share_te).max() < 0.01  # stratified
    assert tr.meta["resize"]["method"] == "bicubic" and tr.meta["resize"]["to"] == [16, 16]


def test_digits_split_is_seeded_and_native_size_is_exact(tmp_path: Path) -> None:
    a = read_dataset("digits", {"image_size": 8, "seed": 1}, base_dir=tmp_path)
    b = read_dataset("digits", {"image_size": 8, "seed": 1}, base_dir=tmp_path)
    c = read_dataset("digits", {"image_size": 8, "seed": 2}, base_dir=tmp_path)
    assert a["train"].fingerprint() == b["train"].fingerprint() != c["train"].fingerprint()
    # At native size the images are exactly the scaled originals: all of them, across both splits.
    both = np.concatenate([a["train"].images, a["test"].images])[:, 0].astype(np.int64)
    expected = np.rint(load_digits().images * 255 / 16).astype(np.int64)
    assert sorted(map(bytes, both.astype(np.uint8))) == sorted(map(bytes, expected.astype(np.uint8)))


def test_bicubic_upsampling_keeps_constant_images_and_clamps() -> None:
    flat = np.full((2, 1, 8, 8), 77, dtype=np.uint8)
    assert (resize_bicubic(flat, 16) == 77).all()
    edge = np.zeros((1, 1, 8, 8), dtype=np.uint8)
    edge[..., 4:] = 255  # a hard edge overshoots in bicubic: must be clamped, not wrapped
    up = resize_bicubic(edge, 32)
    assert up[..., :, -1].min() == 255 and up[..., :, 0].max() == 0


@pytest.mark.parametrize("bad", [{"test_fraction": 1.5}, {"image_size": 0}, {"imagesize": 16}])
def test_digits_bad_options(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        read_dataset("digits", bad, base_dir=tmp_path)


def test_toy2d_matches_appendix_g1(tmp_path: Path) -> None:
    s = read_dataset("toy2d", {}, base_dir=tmp_path)
    tr, te = s["train"], s["test"]
    assert tr.images.shape == (6000, 2) and te.images.shape == (600, 2)
    assert tr.images.dtype == np.float32 and tr.pixel_space == "raw"
    np.testing.assert_allclose(tr.images[:, 1], 2 * tr.images[:, 0], rtol=1e-6)
    for split, per_mode in ((tr, 1000), (te, 100)):
        x1 = split.images[:, 0]
        for label, centres in ((0, (-50, -10, 30)), (1, (-30, 10, 50))):
            for c in centres:
                near = np.abs(x1 - c) < 8  # modes are 20 apart, sd 1: membership is unambiguous
                assert near.sum() == per_mode
                assert (split.labels[near] == label).all()
                assert abs(x1[near].mean() - c) < 0.5 and 0.8 < x1[near].std() < 1.2


def test_toy2d_seeded_and_validated(tmp_path: Path) -> None:
    a = read_dataset("toy2d", {"seed": 3, "points_per_mode": 10, "test_size": 12}, base_dir=tmp_path)
    b = read_dataset("toy2d", {"seed": 3, "points_per_mode": 10, "test_size": 12}, base_dir=tmp_path)
    c = read_dataset("toy2d", {"seed": 4, "points_per_mode": 10, "test_size": 12}, base_dir=tmp_path)
    assert len(a["train"]) == 60 and len(a["test"]) == 12
    assert a["train"].fingerprint() == b["train"].fingerprint() != c["train"].fingerprint()
    with pytest.raises(ConfigError, match="test_size must be a positive multiple of 6"):
        read_dataset("toy2d", {"test_size": 10}, base_dir=tmp_path)
