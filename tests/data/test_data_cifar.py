"""CIFAR-10/100 readers against small archives in the official binary and python formats."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from tests.data.data_fakes import cifar_binary_records, cifar_python_batch, make_cifar, make_tar, py2_pickle

from pagstore.config import ConfigError
from pagstore.data import RawDataError, read_dataset

CASES = [("cifar10", "binary"), ("cifar10", "python"), ("cifar100", "binary"), ("cifar100", "python")]


@pytest.mark.parametrize(("dataset", "fmt"), CASES)
def test_reads_official_layout(tmp_path: Path, dataset: str, fmt: str) -> None:
    truth = make_cifar(tmp_path / "raw", dataset, fmt)
    splits = read_dataset(dataset, {"raw_dir": "raw", "archive": fmt}, base_dir=tmp_path)
    for split in ("train", "test"):
        s = splits[split]
        np.testing.assert_array_equal(s.images, truth[f"{split}_x"])
        np.testing.assert_array_equal(s.labels, truth[f"{split}_y"])
        assert s.images.dtype == np.uint8 and s.images.shape[1:] == (3, 32, 32)
        assert s.class_names == tuple(truth["names"])
        assert s.meta["source"]["format"] == fmt
        assert s.meta["source"]["sha256"].startswith("sha256:")


def test_binary_pixel_order_is_planes_then_rows(tmp_path: Path) -> None:
    # One record whose bytes are 0..3071 mod 256: byte k is channel k // 1024, row (k % 1024) // 32, col k % 32.
    pixels = (np.arange(3072) % 256).astype(np.uint8)
    d = "cifar-10-batches-bin"
    rec = bytes([7]) + pixels.tobytes()
    members = {f"{d}/data_batch_{i}.bin": rec for i in range(1, 6)}
    members[f"{d}/test_batch.bin"] = rec
    members[f"{d}/batches.meta.txt"] = "\n".join("abcdefghij").encode()
    make_tar(tmp_path / "cifar-10-binary.tar.gz", members)
    s = read_dataset("cifar10", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)["test"]
    assert s.labels.tolist() == [7]
    assert s.images[0, 1, 2, 3] == (1024 + 2 * 32 + 3) % 256


def test_missing_archive_names_path_and_url(tmp_path: Path) -> None:
    with pytest.raises(RawDataError) as err:
        read_dataset("cifar10", {"raw_dir": "nowhere", "archive": "python"}, base_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-python.tar.gz") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg


def test_unknown_option_and_bad_archive_kind_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="raw_dri"):
        read_dataset("cifar10", {"raw_dri": "raw"}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="archive"):
        read_dataset("cifar10", {"raw_dir": "raw", "archive": "matlab"}, base_dir=tmp_path)


def test_truncated_archive_is_a_clear_error(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "binary")
    path = truth["archive"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RawDataError, match="corrupt or truncated archive"):
        read_dataset("cifar10", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(RawDataError, match="cifar-10-python.tar.gz: corrupt or truncated"):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)


def _rewrite(truth: dict, member: str, data: bytes | None) -> None:
    members = dict(truth["members"])
    if data is None:
        del members[member]
    else:
        members[member] = data
    make_tar(truth["archive"], members)


def test_wrong_record_size_names_member(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar100", "binary")
    good = truth["members"]["cifar-100-binary/test.bin"]
    _rewrite(truth, "cifar-100-binary/test.bin", good[:-5])
    with pytest.raises(RawDataError, match=r"cifar-100-binary/test.bin: size .* 3074-byte record"):
        read_dataset("cifar100", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)


def test_bad_label_names_member_and_record(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "binary")
    x = truth["test_x"]
    y = truth["test_y"].copy()
    y[2] = 12
    _rewrite(truth, "cifar-10-batches-bin/test_batch.bin", cifar_binary_records(x, y))
    with pytest.raises(RawDataError, match=r"test_batch.bin: label 12 of record 2 is outside \[0, 10\)"):
        read_dataset("cifar10", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)


def test_missing_member_is_named(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "python")
    _rewrite(truth, "cifar-10-batches-py/data_batch_3", None)
    with pytest.raises(RawDataError, match="data_batch_3"):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)


def test_python_batch_wrong_shape_and_label_count(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "python")
    m = "cifar-10-batches-py/test_batch"
    bad = py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    _rewrite(truth, m, bad)
    with pytest.raises(RawDataError, match=r"test_batch: 'data' must be a uint8 array \(N, 3072\)"):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)
    _rewrite(truth, m, cifar_python_batch(truth["test_x"], truth["test_y"][:-1]))
    with pytest.raises(RawDataError, match="test_batch: 4 images but 'labels' has shape"):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)
    _rewrite(truth, m, cifar_python_batch(truth["test_x"], truth["test_y"], labels_key=b"fine_labels"))
    with pytest.raises(RawDataError, match="test_batch: missing key b'labels'"):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.target}",))


def test_malicious_batch_is_refused_without_running(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "python")
    marker = tmp_path / "pwned"
    _rewrite(truth, "cifar-10-batches-py/data_batch_1", py2_pickle({b"data": _Evil(marker)}))
    refused = r"data_batch_1: unsafe or malformed pickle .*refusing global '(posix|os)\.system'"
    with pytest.raises(RawDataError, match=refused):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)
    assert not marker.exists()


def test_member_with_parent_path_is_refused(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "binary")
    path = truth["archive"]
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(RawDataError, match=r"'\.\./escape.txt' has an absolute path or '\.\.'"):
        read_dataset("cifar10", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)
    assert not (tmp_path.parent / "escape.txt").exists()
