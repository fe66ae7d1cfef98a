"""The ``cifar10`` and ``cifar100`` readers: the official archives, read without extracting them.

Both official formats are supported (``archive: binary | python``):
  - binary: records of label byte(s) + 3072 pixel bytes (R, G, B planes of 32x32, row-major); CIFAR-100
    records carry two label bytes (coarse, fine) and we use the fine label;
  - python: pickled dicts written by Python 2 (keys are byte strings such as ``b"data"``), read with a
    restricted unpickler that only admits numpy array reconstruction, because a downloaded pickle can run code.
Archives come from https://www.cs.toronto.edu/~kriz/cifar.html and go, unextracted, in ``raw_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pagstore.data.prepared import PreparedSplit
from pagstore.data.raw import RawDataError, check_labels, file_sha256, read_tar_members, require_file, text_lines
from pagstore.data.safe_pickle import restricted_loads

URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
# What to do when the restricted unpickler refuses a python-version batch: the binary version has no pickle.
PICKLE_HINT = ("the restricted unpickler reads only numpy arrays; use the binary version instead: set "
               "`archive: binary` in the profile's options and put the -binary.tar.gz archive in raw_dir")
PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarOptions:
    """raw_dir: directory holding the official archive (relative to pipeline.yaml); archive: its format."""

    raw_dir: str
    archive: Literal["binary", "python"] = "python"


@dataclass(frozen=True)
class _Layout:
    """Where one dataset/format keeps its pieces inside the official archive."""

    dataset: str
    num_classes: int
    archive: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    names: str
    label_bytes: int = 1  # binary only: bytes before the pixels; the last one is the label we use
    labels_key: bytes = b"labels"  # python only
    names_key: bytes = b"label_names"  # python only


_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LAYOUTS = {
    ("cifar10", "binary"): _Layout(
        "cifar10", 10, "cifar-10-binary.tar.gz",
        tuple(f"cifar-10-batches-bin/{b}.bin" for b in _BATCHES), ("cifar-10-batches-bin/test_batch.bin",),
        "cifar-10-batches-bin/batches.meta.txt",
    ),
    ("cifar10", "python"): _Layout(
        "cifar10", 10, "cifar-10-python.tar.gz",
        tuple(f"cifar-10-batches-py/{b}" for b in _BATCHES), ("cifar-10-batches-py/test_batch",),
        "cifar-10-batches-py/batches.meta",
    ),
    ("cifar100", "binary"): _Layout(
        "cifar100", 100, "cifar-100-binary.tar.gz",
        ("cifar-100-binary/train.bin",), ("cifar-100-binary/test.bin",), "cifar-100-binary/fine_label_names.txt",
        label_bytes=2,
    ),
    ("cifar100", "python"): _Layout(
        "cifar100", 100, "cifar-100-python.tar.gz",
        ("cifar-100-python/train",), ("cifar-100-python/test",), "cifar-100-python/meta",
        labels_key=b"fine_labels", names_key=b"fine_label_names",
    ),
}


def decode_binary(data: bytes, label_bytes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Records of ``label_bytes`` + 3072 bytes -> images uint8 (N, 3, 32, 32), labels int64 (N,) (last label byte)."""
    record = label_bytes + PIXELS
    if len(data) == 0 or len(data) % record:
        raise RawDataError(
            f"{where}: size {len(data)} bytes is not a positive multiple of the {record}-byte record "
            f"({label_bytes} label byte(s) + {PIXELS} pixels); wrong file or truncated"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, label_bytes - 1].astype(np.int64)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), labels


def _get(d: dict, key: bytes, where: str) -> Any:
    # Python-2 pickles load with bytes keys; a re-pickled file may have str keys: accept either.
    for k in (key, key.decode()):
        if k in d:
            return d[k]
    raise RawDataError(f"{where}: missing key {key!r} (found keys {sorted(map(repr, d))})")


def decode_python_batch(data: bytes, labels_key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A pickled batch dict -> images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    batch = restricted_loads(data, where, hint=PICKLE_HINT)
    if not isinstance(batch, dict):
        raise RawDataError(f"{where}: expected a pickled dict, got {type(batch).__name__}")
    x = _get(batch, b"data", where)
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != PIXELS:
        desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise RawDataError(f"{where}: 'data' must be a uint8 array (N, {PIXELS}), got {desc}")
    y = _get(batch, labels_key, where)
    try:
        labels = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise RawDataError(f"{where}: {labels_key.decode()!r} must be a list of integers") from None
    if labels.shape != (x.shape[0],):
        raise RawDataError(f"{where}: {x.shape[0]} images but {labels_key.decode()!r} has shape {labels.shape}")
    return x.reshape(-1, 3, 32, 32).copy(), labels


def _names(data: bytes, layout: _Layout, fmt: str, where: str) -> tuple[str, ...]:
    if fmt == "binary":
        names = text_lines(data, where)
    else:
        meta = restricted_loads(data, where, hint=PICKLE_HINT)
        if not isinstance(meta, dict):
            raise RawDataError(f"{where}: expected a pickled dict, got {type(meta).__name__}")
        raw = _get(meta, layout.names_key, where)
        if not isinstance(raw, list) or not all(isinstance(n, (bytes, str)) for n in raw):
            raise RawDataError(f"{where}: {layout.names_key!r} must be a list of strings")
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in raw]
    if len(names) != layout.num_classes:
        raise RawDataError(f"{where}: expected {layout.num_classes} class names, found {len(names)}")
    return tuple(names)


def read_cifar(dataset: str, opts: CifarOptions, base_dir: Path) -> dict[str, PreparedSplit]:
    """Read ``dataset`` ("cifar10" | "cifar100") from its official archive in ``opts.raw_dir``."""
    layout = LAYOUTS[(dataset, opts.archive)]
    path = require_file(base_dir / opts.raw_dir / layout.archive, f"{dataset} archive ({opts.archive} version)", URL)
    members = read_tar_members(path, (*layout.train, *layout.test, layout.names))
    class_names = _names(members[layout.names], layout, opts.archive, f"{path}:{layout.names}")
    digest = file_sha256(path)
    splits = {}
    for split, names in (("train", layout.train), ("test", layout.test)):
        parts = []
        for m in names:
            where = f"{path}:{m}"
            if opts.archive == "binary":
                parts.append(decode_binary(members[m], layout.label_bytes, where))
            else:
                parts.append(decode_python_batch(members[m], layout.labels_key, where))
            check_labels(parts[-1][1], layout.num_classes, where)
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        meta = {
            "dataset": dataset,
            "split": split,
            "source": {
                "archive": str(Path(opts.raw_dir) / layout.archive),
                "sha256": digest,
                "format": opts.archive,
                "members": list(names),
            },
            "resize": {"method": "none", "to": [32, 32]},
        }
        splits[split] = PreparedSplit(images, labels, class_names, meta)
    return splits


def read_cifar10(opts: CifarOptions, base_dir: Path) -> dict[str, PreparedSplit]:
    """CIFAR-10: images uint8 (N, 3, 32, 32) (50000 train / 10000 test), labels int64 in [0, 10)."""
    return read_cifar("cifar10", opts, base_dir)


def read_cifar100(opts: CifarOptions, base_dir: Path) -> dict[str, PreparedSplit]:
    """CIFAR-100 (fine labels): images uint8 (N, 3, 32, 32) (50000 / 10000), labels int64 in [0, 100)."""
    return read_cifar("cifar100", opts, base_dir)
