"""imagefolder reader: train/val trees and single-tree splits of PNG/JPEG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pagstore.data import RawDataError, read_dataset


def _img(path: Path, value: tuple[int, int, int], size: int = 8, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (size, size), value)
    im = im.convert(mode)
    im.save(path)


def test_train_val_layout(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    _img(root / "train/zebra/images/a.png", (10, 20, 30))  # Tiny-ImageNet style nested images/ folder
    _img(root / "train/zebra/images/b.PNG", (11, 21, 31), size=12)
    _img(root / "train/ant/x.jpg", (200, 100, 50))
    _img(root / "train/ant/y.jpeg", (128, 128, 128), mode="L")
    (root / "train/ant/notes.txt").write_text("ignored")
    _img(root / "val/ant/v.png", (1, 2, 3))
    _img(root / "test/zebra/ignored.png", (1, 2, 3))  # val wins over test
    s = read_dataset("imagefolder", {"root": "tiny", "image_size": 8}, base_dir=tmp_path)
    tr, te = s["train"], s["test"]
    assert tr.class_names == ("ant", "zebra")
    assert tr.labels.tolist() == [0, 0, 1, 1] and te.labels.tolist() == [0]
    assert tr.images.shape == (4, 3, 8, 8) and tr.images.dtype == np.uint8
    assert tr.images[2, :, 3, 3].tolist() == [10, 20, 30]
    assert tr.images[1, :, 0, 0].tolist() == [128, 128, 128]  # grayscale -> RGB
    assert abs(int(tr.images[0, 0, 4, 4]) - 200) <= 3  # JPEG is lossy
    assert tr.images[3, :, 5, 5].tolist() == [11, 21, 31]  # 12 px -> 8 px, flat colour kept
    assert te.images[0, :, 0, 0].tolist() == [1, 2, 3]
    assert te.meta["source"]["files"] == ["val/ant/v.png"]


def test_flat_root_is_split_stratified_and_seeded(tmp_path: Path) -> None:
    for c in ("a", "b"):
        for i in range(5):
            _img(tmp_path / "flat" / c / f"{i}.png", (i, 0, 0))
    opts = {"root": "flat", "image_size": 4, "test_fraction": 0.4, "seed": 0}
    s = read_dataset("imagefolder", opts, base_dir=tmp_path)
    assert np.bincount(s["test"].labels).tolist() == [2, 2] and np.bincount(s["train"].labels).tolist() == [3, 3]
    again = read_dataset("imagefolder", opts, base_dir=tmp_path)
    assert again["test"].fingerprint() == s["test"].fingerprint()
    with pytest.raises(RawDataError, match="set options.test_fraction"):
        read_dataset("imagefolder", {"root": "flat", "image_size": 4}, base_dir=tmp_path)


def test_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(RawDataError, match=r"missing: image folder root not found.*tiny-imagenet-200.zip"):
        read_dataset("imagefolder", {"root": "missing", "image_size": 4}, base_dir=tmp_path)
    root = tmp_path / "r"
    _img(root / "train/cat/1.png", (0, 0, 0))
    with pytest.raises(RawDataError, match="neither val/ nor test/"):
        read_dataset("imagefolder", {"root": "r", "image_size": 4}, base_dir=tmp_path)
    # Tiny-ImageNet's official val layout (val/images/*.JPEG) is not class-per-subfolder.
    _img(root / "val/images/val_0.png", (0, 0, 0))
    with pytest.raises(RawDataError, match=r"val/images: class folder not present in the training tree"):
        read_dataset("imagefolder", {"root": "r", "image_size": 4}, base_dir=tmp_path)
    (root / "val/images/val_0.png").unlink()
    (root / "val/cat").mkdir(parents=True)
    (root / "val/images").rmdir()
    with pytest.raises(RawDataError, match=r"val/cat: class folder holds no"):
        read_dataset("imagefolder", {"root": "r", "image_size": 4}, base_dir=tmp_path)
    (root / "val/cat/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(RawDataError, match=r"broken.png: not a readable image"):
        read_dataset("imagefolder", {"root": "r", "image_size": 4}, base_dir=tmp_path)
