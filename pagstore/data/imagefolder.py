"""The ``imagefolder`` reader: class-per-subfolder image trees (PNG/JPEG), e.g. a re-arranged Tiny-ImageNet.

Two layouts are accepted under ``root``:
  - ``train/<class>/...`` plus ``val/<class>/...`` or ``test/<class>/...`` (val wins if both exist);
  - ``<class>/...`` only, split into train/test by a seeded stratified split with ``test_fraction``.
Images are found recursively inside each class folder (Tiny-ImageNet's ``train/<wnid>/images/*.JPEG``
works), converted to RGB and resized bicubically (PIL) to ``image_size``. Class names are the sorted
folder names of the training tree. Tiny-ImageNet's official ``val/images`` + ``val_annotations.txt``
layout is not a class-per-subfolder layout: move each val image into ``val/<wnid>/`` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from pagstore.data.prepared import PreparedSplit
from pagstore.data.raw import RawDataError, require_dir

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip (or any class-per-subfolder image tree)"
EXTENSIONS = {".png", ".jpg", ".jpeg"}


@dataclass(frozen=True)
class ImageFolderOptions:
    """root (relative to pipeline.yaml); image_size: output side; test_fraction/seed: only for a flat root."""

    root: str
    image_size: int
    test_fraction: float | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.test_fraction is not None and not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def list_classes(tree: Path) -> dict[str, list[Path]]:
    """``{class folder name: sorted image files under it}`` for the immediate subfolders of ``tree``."""
    classes = {}
    for folder in sorted(p for p in tree.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not files:
            raise RawDataError(f"{folder}: class folder holds no .png/.jpg/.jpeg images")
        classes[folder.name] = files
    if not classes:
        raise RawDataError(f"{tree}: no class subfolders found (expected {tree}/<class>/<image files>)")
    return classes


def load_images(files: list[Path], size: int, desc: str) -> np.ndarray:
    """Decode image files to RGB uint8 (N, 3, size, size), resizing bicubically where needed."""
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(tqdm(files, desc=desc, disable=None)):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BICUBIC)
                out[i] = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise RawDataError(f"{f}: not a readable image ({exc})") from None
    return out


def _flatten(classes: dict[str, list[Path]], names: tuple[str, ...], tree: Path) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for cls, paths in classes.items():
        if cls not in names:
            raise RawDataError(
                f"{tree}/{cls}: class folder not present in the training tree (known classes: {len(names)}); "
                "evaluation images must sit in class subfolders named like the training ones"
            )
        files += paths
        labels += [names.index(cls)] * len(paths)
    return files, np.asarray(labels, dtype=np.int64)


def _split_flat(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: per class, round(fraction * n) test images (at least one train image kept)."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(max(int(round(fraction * len(idx))), 1), len(idx) - 1)
        test.append(idx[:k])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def read(opts: ImageFolderOptions, base_dir: Path) -> dict[str, PreparedSplit]:
    """Read the tree. Images uint8 (N, 3, S, S) with S = image_size; labels int64 indexing the sorted classes."""
    root = require_dir(base_dir / opts.root, "image folder root", URL)
    held_out = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if (root / "train").is_dir():
        if held_out is None:
            raise RawDataError(f"{root}: has train/ but neither val/ nor test/ (expected {root}/val/<class>/...)")
        train_classes = list_classes(root / "train")
        names = tuple(train_classes)
        sets = {"train": _flatten(train_classes, names, root / "train"),
                "test": _flatten(list_classes(held_out), names, held_out)}
        rule = f"train/ and {held_out.name}/ folders"
    else:
        if opts.test_fraction is None:
            raise RawDataError(
                f"{root}: no train/ folder, so the class folders are split in two; set options.test_fraction"
            )
        classes = list_classes(root)
        names = tuple(classes)
        files, labels = _flatten(classes, names, root)
        if np.bincount(labels).min() < 2:
            raise RawDataError(f"{root}: every class needs at least 2 images to split into train and test")
        tr, te = _split_flat(labels, opts.test_fraction, opts.seed)
        sets = {"train": ([files[i] for i in tr], labels[tr]), "test": ([files[i] for i in te], labels[te])}
        rule = f"stratified split of one tree, test_fraction={opts.test_fraction}, seed={opts.seed}"
    splits = {}
    for split, (files, labels) in sets.items():
        images = load_images(files, opts.image_size, f"{split} images")
        meta = {
            "dataset": "imagefolder",
            "split": split,
            "source": {"root": opts.root, "files": [str(f.relative_to(root)) for f in files]},
            "split_rule": rule,
            "resize": {"method": "bicubic (PIL Image.resize, Resampling.BICUBIC) where size differs",
                       "to": [opts.image_size, opts.image_size]},
        }
        splits[split] = PreparedSplit(images, labels, names, meta)
    return splits
