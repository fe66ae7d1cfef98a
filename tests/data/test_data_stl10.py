"""STL-10 reader against a small stl10_binary.tar.gz in the official column-major layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.data.data_fakes import make_stl10, make_tar, stl_column_major

from pagstore.data import RawDataError, read_dataset


def test_reads_column_major_images_and_shifts_labels(tmp_path: Path) -> None:
    truth = make_stl10(tmp_path / "raw")
    splits = read_dataset("stl10", {"raw_dir": "raw"}, base_dir=tmp_path)
    for split in ("train", "test"):
        s = splits[split]
        assert s.images.shape == (len(truth[f"{split}_y"]), 3, 96, 96)
        np.testing.assert_array_equal(s.images, truth[f"{split}_x"])
        np.testing.assert_array_equal(s.labels, truth[f"{split}_y"])
        assert s.class_names[0] == "airplane" and s.class_names[-1] == "truck"
    assert splits["train"].labels.max() == 9 and splits["test"].labels.min() == 0


def test_first_bytes_are_the_first_column(tmp_path: Path) -> None:
    # The STL-10 docs: the first 96 values of a plane are its first column (top to bottom).
    truth = make_stl10(tmp_path)
    x = truth["members"]["stl10_binary/train_X.bin"]
    s = read_dataset("stl10", {"raw_dir": "."}, base_dir=tmp_path)["train"]
    np.testing.assert_array_equal(s.images[0, 0, :, 0], np.frombuffer(x[:96], dtype=np.uint8))


def test_resize_is_recorded(tmp_path: Path) -> None:
    make_stl10(tmp_path)
    s = read_dataset("stl10", {"raw_dir": ".", "image_size": 32}, base_dir=tmp_path)["test"]
    assert s.images.shape[1:] == (3, 32, 32) and s.images.dtype == np.uint8
    assert s.meta["resize"]["method"] == "bicubic" and s.meta["resize"]["to"] == [32, 32]


def _rewrite(truth: dict, member: str, data: bytes) -> None:
    make_tar(truth["archive"], {**truth["members"], member: data})


def test_bad_label_is_named(tmp_path: Path) -> None:
    truth = make_stl10(tmp_path)
    _rewrite(truth, "stl10_binary/test_y.bin", bytes([1, 2, 0, 4, 5]))
    with pytest.raises(RawDataError, match=r"test_y.bin: label 0 of record 2 is outside 1..10"):
        read_dataset("stl10", {"raw_dir": "."}, base_dir=tmp_path)


def test_label_count_and_image_size_mismatch(tmp_path: Path) -> None:
    truth = make_stl10(tmp_path)
    _rewrite(truth, "stl10_binary/train_y.bin", bytes([1, 2, 3]))
    with pytest.raises(RawDataError, match="train_y.bin: 3 labels for 4 images"):
        read_dataset("stl10", {"raw_dir": "."}, base_dir=tmp_path)
    _rewrite(truth, "stl10_binary/train_X.bin", stl_column_major(truth["train_x"])[:-10])
    with pytest.raises(RawDataError, match=r"train_X.bin: size \d+ bytes is not a positive multiple of 27648"):
        read_dataset("stl10", {"raw_dir": "."}, base_dir=tmp_path)


def test_missing_and_truncated_archive(tmp_path: Path) -> None:
    missing = r"stl10_binary.tar.gz: .*not found.*https://cs.stanford.edu/~acoates/stl10/"
    with pytest.raises(RawDataError, match=missing):
        read_dataset("stl10", {"raw_dir": "."}, base_dir=tmp_path)
    truth = make_stl10(tmp_path)
    data = truth["archive"].read_bytes()
    truth["archive"].write_bytes(data[: len(data) - 2000])
    with pytest.raises(RawDataError, match="stl10_binary.tar.gz: corrupt or truncated archive"):
        read_dataset("stl10", {"raw_dir": "."}, base_dir=tmp_path)
