"""Builders of small raw dataset files in the exact formats of the official downloads.

CIFAR python batches are written the way Python 2's cPickle wrote them (byte strings as BINSTRING
opcodes, numpy arrays via ``numpy.core.multiarray._reconstruct``), so the reader is tested against what
the real files contain, not against a Python 3 re-pickling.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np


class _Py2Pickler(pickle._Pickler):  # pure-Python pickler, so its dispatch table can be changed
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        # Python 2 ``str`` -> SHORT_BINSTRING / BINSTRING; these load as bytes with encoding="bytes".
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj: object) -> bytes:
    """Pickle ``obj`` as Python 2 + numpy 1.x would have (protocol 2, byte strings, numpy.core path)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    """Write ``members`` (name -> bytes) as regular files into a tar archive at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def random_images(rng: np.random.Generator, n: int, side: int = 32) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)


def cifar_binary_records(images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None) -> bytes:
    """CIFAR binary records: [coarse byte] label byte + R, G, B planes of 32x32 row-major."""
    out = bytearray()
    for i in range(len(images)):
        if coarse is not None:
            out.append(int(coarse[i]))
        out.append(int(labels[i]))
        out += images[i].tobytes()  # (3, 32, 32) C-order = planes, rows, columns
    return bytes(out)


def cifar_python_batch(images: np.ndarray, labels: np.ndarray, labels_key: bytes = b"labels") -> bytes:
    """A pickled CIFAR batch dict with the real keys (data is uint8 (N, 3072), labels a list)."""
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"data": images.reshape(len(images), -1),
        labels_key: [int(v) for v in labels],
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    if labels_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(v) // 5 for v in labels]
    return py2_pickle(batch)


def make_cifar(raw_dir: Path, dataset: str, fmt: str, seed: int = 0, per_batch: int = 3) -> dict[str, np.ndarray]:
    """Write a small official-format archive for ``dataset``/``fmt`` into ``raw_dir``; return the truth."""
    rng = np.random.default_rng(seed)
    c = 10 if dataset == "cifar10" else 100
    n_batches = 5 if dataset == "cifar10" else 1
    tr_x, te_x = random_images(rng, per_batch * n_batches), random_images(rng, per_batch + 1)
    tr_y, te_y = rng.integers(0, c, len(tr_x)), rng.integers(0, c, len(te_x))
    tr_y[0], te_y[0] = c - 1, 0  # exercise both ends of the label range
    names = [f"class_{i}" for i in range(c)]
    m: dict[str, bytes] = {}
    if dataset == "cifar10" and fmt == "binary":
        d = "cifar-10-batches-bin"
        for b in range(5):
            sl = slice(b * per_batch, (b + 1) * per_batch)
            m[f"{d}/data_batch_{b + 1}.bin"] = cifar_binary_records(tr_x[sl], tr_y[sl])
        m[f"{d}/test_batch.bin"] = cifar_binary_records(te_x, te_y)
        m[f"{d}/batches.meta.txt"] = ("\n".join(names) + "\n\n").encode()
        archive = "cifar-10-binary.tar.gz"
    elif dataset == "cifar10":
        d = "cifar-10-batches-py"
        for b in range(5):
            sl = slice(b * per_batch, (b + 1) * per_batch)
            m[f"{d}/data_batch_{b + 1}"] = cifar_python_batch(tr_x[sl], tr_y[sl])
        m[f"{d}/test_batch"] = cifar_python_batch(te_x, te_y)
        m[f"{d}/batches.meta"] = py2_pickle(
            {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
        )
        m[f"{d}/readme.html"] = b"<html></html>"
        archive = "cifar-10-python.tar.gz"
    elif fmt == "binary":
        d = "cifar-100-binary"
        m[f"{d}/train.bin"] = cifar_binary_records(tr_x, tr_y, coarse=tr_y // 5)
        m[f"{d}/test.bin"] = cifar_binary_records(te_x, te_y, coarse=te_y // 5)
        m[f"{d}/coarse_label_names.txt"] = "\n".join(f"super_{i}" for i in range(20)).encode()
        m[f"{d}/fine_label_names.txt"] = "\n".join(names).encode()
        archive = "cifar-100-binary.tar.gz"
    else:
        d = "cifar-100-python"
        m[f"{d}/train"] = cifar_python_batch(tr_x, tr_y, b"fine_labels")
        m[f"{d}/test"] = cifar_python_batch(te_x, te_y, b"fine_labels")
        m[f"{d}/meta"] = py2_pickle(
            {b"fine_label_names": [n.encode() for n in names],
             b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]}
        )
        archive = "cifar-100-python.tar.gz"
    make_tar(raw_dir / archive, m)
    return {"train_x": tr_x, "train_y": tr_y, "test_x": te_x, "test_y": te_y, "archive": raw_dir / archive,
            "members": m, "names": names}


def stl_column_major(images: np.ndarray) -> bytes:
    """STL-10 X bytes: per image, per channel, the 96x96 plane in column-major order (columns first)."""
    return b"".join(images[i, c].tobytes(order="F") for i in range(len(images)) for c in range(3))


def make_stl10(raw_dir: Path, n_train: int = 4, n_test: int = 5, seed: int = 0) -> dict[str, object]:
    """Write a small ``stl10_binary.tar.gz`` (with unlabeled data and fold indices like the real one)."""
    rng = np.random.default_rng(seed)
    tr_x, te_x = random_images(rng, n_train, 96), random_images(rng, n_test, 96)
    tr_y, te_y = rng.integers(1, 11, n_train), rng.integers(1, 11, n_test)
    tr_y[0] = 10
    te_y[0] = 1
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    d = "stl10_binary"
    m = {
        f"{d}/unlabeled_X.bin": stl_column_major(random_images(rng, 2, 96)),
        f"{d}/train_X.bin": stl_column_major(tr_x),
        f"{d}/train_y.bin": tr_y.astype(np.uint8).tobytes(),
        f"{d}/test_X.bin": stl_column_major(te_x),
        f"{d}/test_y.bin": te_y.astype(np.uint8).tobytes(),
        f"{d}/class_names.txt": ("\n".join(names) + "\n").encode(),
        f"{d}/fold_indices.txt": b"0 1 2\n",
    }
    make_tar(raw_dir / "stl10_binary.tar.gz", m)
    return {"train_x": tr_x, "train_y": tr_y - 1, "test_x": te_x, "test_y": te_y - 1, "members": m,
            "archive": raw_dir / "stl10_binary.tar.gz", "names": names}
