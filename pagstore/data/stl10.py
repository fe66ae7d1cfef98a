"""The ``stl10`` reader: STL-10's labelled train (5000) and test (8000) images from the official archive.

``stl10_binary.tar.gz`` (https://cs.stanford.edu/~acoates/stl10/) holds ``stl10_binary/{train,test}_X.bin``:
uint8 images stored column-major, one channel plane at a time, so reading a file as (N, 3, 96, 96) gives
each plane transposed (x, y); swapping the last two axes yields (N, 3, H, W). ``*_y.bin`` hold one label
byte per image in 1..10. The 2.6 GB unlabeled_X.bin is skipped while streaming the archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pagstore.data.prepared import PreparedSplit
from pagstore.data.raw import RawDataError, check_labels, file_sha256, read_tar_members, require_file, text_lines
from pagstore.data.resize import resize_bicubic, resize_meta

URL = "https://cs.stanford.edu/~acoates/stl10/"
ARCHIVE = "stl10_binary.tar.gz"
SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


@dataclass(frozen=True)
class Stl10Options:
    """raw_dir: directory holding stl10_binary.tar.gz (relative to pipeline.yaml); image_size: output side."""

    raw_dir: str
    image_size: int = SIDE

    def validate(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")


def decode_images(data: bytes, where: str) -> np.ndarray:
    """Column-major STL-10 image bytes -> uint8 (N, 3, 96, 96) in (channel, row, column) order."""
    if len(data) == 0 or len(data) % IMAGE_BYTES:
        raise RawDataError(
            f"{where}: size {len(data)} bytes is not a positive multiple of {IMAGE_BYTES} (3x96x96 images); "
            "wrong file or truncated"
        )
    planes = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3, SIDE, SIDE)
    return np.ascontiguousarray(planes.transpose(0, 1, 3, 2))


def decode_labels(data: bytes, count: int, where: str) -> np.ndarray:
    """One byte per image in 1..10 -> int64 (N,) in 0..9."""
    if len(data) != count:
        raise RawDataError(f"{where}: {len(data)} labels for {count} images")
    raw = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    bad = np.flatnonzero((raw < 1) | (raw > 10))
    if bad.size:
        raise RawDataError(f"{where}: label {int(raw[bad[0]])} of record {int(bad[0])} is outside 1..10")
    labels = raw - 1
    check_labels(labels, 10, where)
    return labels


def read(opts: Stl10Options, base_dir: Path) -> dict[str, PreparedSplit]:
    """Read train/test. Images uint8 (N, 3, S, S) with S = image_size (bicubic resize), labels int64 in [0, 10)."""
    path = require_file(base_dir / opts.raw_dir / ARCHIVE, "STL-10 binary archive", URL)
    d = "stl10_binary"
    wanted = [f"{d}/{s}_{k}.bin" for s in ("train", "test") for k in ("X", "y")] + [f"{d}/class_names.txt"]
    members = read_tar_members(path, wanted)
    class_names = tuple(text_lines(members[f"{d}/class_names.txt"], f"{path}:{d}/class_names.txt"))
    if len(class_names) != 10:
        raise RawDataError(f"{path}:{d}/class_names.txt: expected 10 class names, found {len(class_names)}")
    digest = file_sha256(path)
    splits = {}
    for split in ("train", "test"):
        images = decode_images(members[f"{d}/{split}_X.bin"], f"{path}:{d}/{split}_X.bin")
        labels = decode_labels(members[f"{d}/{split}_y.bin"], len(images), f"{path}:{d}/{split}_y.bin")
        images = resize_bicubic(images, opts.image_size)
        meta = {
            "dataset": "stl10",
            "split": split,
            "source": {"archive": str(Path(opts.raw_dir) / ARCHIVE), "sha256": digest,
                       "members": [f"{d}/{split}_X.bin", f"{d}/{split}_y.bin"]},
            "resize": resize_meta((SIDE, SIDE), opts.image_size),
        }
        splits[split] = PreparedSplit(images, labels, class_names, meta)
    return splits
