"""The ``digits`` reader: scikit-learn's bundled 8x8 handwritten digits (1797 real images, no download).

Pixels (0..16) are scaled to uint8 0..255 and upsampled bicubically to ``image_size``; the train/test
split is stratified and seeded, so it is the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pagstore.data.prepared import PreparedSplit
from pagstore.data.resize import resize_bicubic, resize_meta


@dataclass(frozen=True)
class DigitsOptions:
    """image_size: output side in pixels (8 keeps the originals); test_fraction in (0, 1); seed of the split."""

    image_size: int = 16
    test_fraction: float = 0.25
    seed: int = 0

    def validate(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def read(opts: DigitsOptions, base_dir: Path) -> dict[str, PreparedSplit]:
    """Load, scale, resize and split the digits. Images uint8 (N, 1, S, S), labels int64 (N,) in [0, 10)."""
    # Imported here: scikit-learn takes seconds to import and only this reader needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    raw = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), values 0..16
    images = np.rint(raw * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    images = resize_bicubic(images, opts.image_size)
    labels = np.asarray(bunch.target, dtype=np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=opts.test_fraction, random_state=opts.seed, stratify=labels, shuffle=True
    )
    class_names = tuple(str(c) for c in range(10))
    splits = {}
    for split, idx in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        meta = {
            "dataset": "digits",
            "split": split,
            "source": "sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
            "pixel_scaling": "round(x * 255 / 16)",
            "resize": resize_meta((8, 8), opts.image_size),
            "split_rule": f"stratified, test_fraction={opts.test_fraction}, seed={opts.seed}",
            "source_indices": "sorted subset of load_digits order",
        }
        splits[split] = PreparedSplit(images[idx], labels[idx], class_names, meta)
    return splits
