"""The prepared-dataset artifact: one ``.npz`` file per split, written by the ``prepare`` stage.

A split holds
  - ``images``: uint8 (N, ch, H, W) for image datasets (pixel space "unit": x / 255 is the [0, 1] image),
    or float32 (N, D) for vector datasets such as toy2d (pixel space "raw": values are used as they are);
  - ``labels``: int64 (N,) in [0, C);
  - ``class_names``: C unicode strings;
  - ``meta``: a JSON string (dataset name, split, source files, any resizing applied).
The fingerprint is a sha256 over the array bytes, shapes, dtypes and class names: it identifies the
content, not the file, so stores and checkpoints can check they were made from the same data.
No pickle is involved in writing or reading (``allow_pickle=False``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pagstore.atomic import atomic_path


class PreparedDataError(ValueError):
    """A prepared split is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class PreparedSplit:
    """One split of a prepared dataset, held in memory.

    Attributes:
        images: uint8 (N, ch, H, W) or float32 (N, D).
        labels: int64 (N,), values in [0, len(class_names)).
        class_names: the C class names, index = label.
        meta: free-form provenance (dataset, split, source files, resizing).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def pixel_space(self) -> str:
        """``"unit"`` for uint8 images (divide by 255), ``"raw"`` for float vectors."""
        return "unit" if self.images.dtype == np.uint8 else "raw"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def validate(self, where: str = "prepared split") -> None:
        """Raise PreparedDataError unless shapes, dtypes and labels are consistent."""
        im, lb = self.images, self.labels
        if im.dtype == np.uint8:
            if im.ndim != 4:
                raise PreparedDataError(f"{where}: uint8 images must be (N, ch, H, W), got shape {im.shape}")
        elif im.dtype == np.float32:
            if im.ndim != 2:
                raise PreparedDataError(f"{where}: float32 samples must be (N, D), got shape {im.shape}")
            if not np.isfinite(im).all():
                raise PreparedDataError(f"{where}: float32 samples contain NaN or inf")
        else:
            raise PreparedDataError(f"{where}: images must be uint8 or float32, got {im.dtype}")
        if lb.dtype != np.int64 or lb.ndim != 1:
            raise PreparedDataError(f"{where}: labels must be int64 (N,), got {lb.dtype} {lb.shape}")
        if lb.shape[0] != im.shape[0]:
            raise PreparedDataError(f"{where}: {im.shape[0]} images but {lb.shape[0]} labels")
        if len(self.class_names) == 0:
            raise PreparedDataError(f"{where}: no class names")
        if lb.size and (lb.min() < 0 or lb.max() >= len(self.class_names)):
            bad = int(np.flatnonzero((lb < 0) | (lb >= len(self.class_names)))[0])
            raise PreparedDataError(
                f"{where}: label {int(lb[bad])} of sample {bad} is outside [0, {len(self.class_names)})"
            )

    @functools.cached_property
    def _fingerprint(self) -> str:
        # Hashed once per split object: stages, sources and stores all ask, and the arrays never change.
        return self._hash()

    def fingerprint(self) -> str:
        """sha256 of the content (arrays, shapes, dtypes, class names), as ``"sha256:<hex>"``."""
        return self._fingerprint

    def _hash(self) -> str:
        h = hashlib.sha256()
        for arr in (self.images, self.labels):
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps(list(self.class_names)).encode())
        return "sha256:" + h.hexdigest()

    def as_float(self, indices: np.ndarray | slice | None = None) -> np.ndarray:
        """Samples as float32 in model space: uint8 -> [0, 1], float32 unchanged. Shape (n, *sample_shape)."""
        x = self.images if indices is None else self.images[indices]
        return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the split to ``path`` (``.npz``) atomically, without pickle."""
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                images=self.images,
                labels=self.labels,
                class_names=np.array(self.class_names, dtype=np.str_),
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
                fingerprint=np.array(self.fingerprint()),
            )


def load_split(path: str | Path) -> PreparedSplit:
    """Read a split written by :meth:`PreparedSplit.save`; check the stored fingerprint matches the content."""
    path = Path(path)
    if not path.is_file():
        raise PreparedDataError(f"{path}: prepared split not found (run `dvc repro prepare` first)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"images", "labels", "class_names", "meta", "fingerprint"} - set(z.files)
            if missing:
                raise PreparedDataError(f"missing array(s) {sorted(missing)}")
            split = PreparedSplit(
                images=z["images"],
                labels=z["labels"],
                class_names=tuple(str(c) for c in z["class_names"]),
                meta=json.loads(str(z["meta"])),
            )
            stored = str(z["fingerprint"])
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        if isinstance(exc, PreparedDataError):
            raise PreparedDataError(f"{path}: {exc}") from None
        raise PreparedDataError(f"{path}: not a readable prepared split ({exc})") from None
    if stored != split.fingerprint():
        raise PreparedDataError(f"{path}: content does not match its recorded fingerprint (file corrupted?)")
    return split
