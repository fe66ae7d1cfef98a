"""The paper's released gradient sets (royg27/PAG-ROB) <-> gradient stores.

Official layout (one pair of files per realization, e.g. ``c10_sbg_data.pt`` / ``c10_sbg_label.pt``):
  ``*_data.pt``: float tensor (N, C + 1, ch, H, W); row n is the image, then one gradient per class 0..C-1;
  ``*_label.pt``: int tensor (N,).
Their training script feeds ``data[:, 0]`` to the model unchanged and their evaluation normalises [0, 1]
images with mean 0.5 / std 0.5, so their pixel space is x = 2 x01 - 1 in [-1, 1] ("signed"). A gradient
there maps to our [0, 1] space by the chain rule, g01 = 2 g: the same direction.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.data.prepared import PreparedSplit, load_split
from pagstore.interop import InteropError
from pagstore.interop.torch_files import TensorChunks, load_plain_tensor, sha256_file

PIXEL_SPACES = {"signed": ("x01 = (x + 1) / 2", 127.5, 1.0), "unit": ("x01 = x", 255.0, 0.0)}
GRAD_SCALE = {"signed": 2.0, "unit": 1.0}  # d/dx01 = (dx/dx01) d/dx
RANGE_TOL = 1e-4
LEVEL_TOL = 0.05  # of one uint8 level: "exact after the pixel mapping", up to float32 rounding
DATA_DTYPES = (torch.float32, torch.float64)
LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)
_REALIZATION = re.compile(r"_(oi|cm|nn|sbg)_data\.pt$")


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_pag_rob` did: rows, shards written now, the detected pixel space, image range."""

    num_rows: int
    shards_written: int
    pixel_space: str
    value_range: tuple[float, float]


def prepared_train(prepared: str | Path) -> PreparedSplit:
    """The prepared train split: ``prepared`` is the ``data/prepared`` folder or a ``train.npz`` file."""
    p = Path(prepared)
    return load_split(p / "train.npz" if p.is_dir() else p)


def detect_pixel_space(lo: float, hi: float, where: str, requested: str = "auto") -> str:
    """"signed" ([-1, 1]) or "unit" ([0, 1]) from the images' value range; refuse what is ambiguous or neither.

    A range inside [0, 1] fits both spaces (signed images that are never darker than mid-grey), so "auto"
    refuses it: pass the space explicitly.
    """
    fits_signed = lo >= -1 - RANGE_TOL and hi <= 1 + RANGE_TOL
    fits_unit = lo >= -RANGE_TOL and hi <= 1 + RANGE_TOL
    if requested == "signed" and not fits_signed or requested == "unit" and not fits_unit or not fits_signed:
        want = {"signed": "[-1, 1]", "unit": "[0, 1]"}.get(requested, "[-1, 1] or [0, 1]")
        raise InteropError(f"{where}: image values span [{lo:.4g}, {hi:.4g}], expected {want}")
    if requested != "auto":
        return requested
    if fits_unit:
        raise InteropError(f"{where}: image values span [{lo:.4g}, {hi:.4g}], which fits both [-1, 1] and [0, 1]; "
                           "pass --pixel-space signed or --pixel-space unit")
    return "signed"


class _Matcher:
    """Finds each official image among the prepared train images by exact uint8 content."""

    def __init__(self, split: PreparedSplit) -> None:
        self.split = split
        self.table: dict[bytes, list[int]] = {}
        for i, img in enumerate(split.images):
            self.table.setdefault(_digest(img), []).append(i)

    def match(self, u8: np.ndarray, their_label: int, row: int, where: str) -> int:
        hits = [i for i in self.table.get(_digest(u8), []) if np.array_equal(self.split.images[i], u8)]
        if not hits:
            raise InteropError(f"{where}: row {row}: image not found in the prepared train split")
        # An image that occurs more than once in the split (with the same label) maps to its first copy:
        # the copies are the same sample, so which index is recorded does not change what trains.
        same = [i for i in hits if int(self.split.labels[i]) == their_label]
        if not same:
            i = hits[0]
            raise InteropError(f"{where}: row {row}: image is train index {i} with label {int(self.split.labels[i])}, "
                               f"but the labels file says {their_label}")
        return same[0]


def _digest(img: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest()


def to_uint8(x: np.ndarray, space: str, first_row: int, where: str) -> np.ndarray:
    """Official images (n, *S) in ``space`` -> uint8 levels; a value off the 256 levels names its row."""
    _, scale, shift = PIXEL_SPACES[space]
    levels = (x.astype(np.float64) + shift) * scale
    rounded = np.rint(levels)
    off = np.abs(levels - rounded).reshape(len(x), -1).max(1) > LEVEL_TOL
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise InteropError(f"{where}: row {first_row + r}: image is not on the 256 pixel levels after "
                           f"{PIXEL_SPACES[space][0]} (image not from the prepared split?)")
    return rounded.astype(np.uint8)


def _scan_range(chunks: TensorChunks, rows: int) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    for start in range(0, chunks.shape[0], rows):
        block = chunks.firsts(start, min(start + rows, chunks.shape[0]))  # images only: 1/11 of the bytes
        if not np.isfinite(block).all():
            bad = int(np.flatnonzero(~np.isfinite(block).reshape(len(block), -1).all(1))[0])
            raise InteropError(f"{chunks.path}: row {start + bad}: image has NaN or inf")
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi


def import_pag_rob(data_path: str | Path, labels_path: str | Path, prepared: str | Path, out: str | Path, *,
                   pixel_space: str = "auto", grad_dtype: str = "float16", samples_per_shard: int | None = None,
                   overwrite: bool = False) -> ImportResult:
    """Convert an official gradient set into a gradient store at ``out`` (resumable, then exported and verified).

    Args:
        data_path: ``*_data.pt``, float (N, C + 1, *S): image then C gradients per row.
        labels_path: ``*_label.pt``, int (N,).
        prepared: our prepared data (folder or train.npz): images are matched to its train split by content;
            ``index`` and ``labels`` come from it (checked against the labels file).
        pixel_space: "auto" (from the value range), "signed" ([-1, 1]) or "unit" ([0, 1]).
        grad_dtype, samples_per_shard: store layout.
        overwrite: replace an existing store at ``out`` instead of resuming it.
    Raises:
        InteropError naming the file (and row) for unsafe, malformed or unmatched input.
    """
    from pagstore.shards import export_webdataset
    from pagstore.store import StoreError, create_store
    from pagstore.verify import verify_store

    split = prepared_train(prepared)
    if split.images.dtype != np.uint8:
        raise InteropError(f"{prepared}: the prepared split holds vectors, not images; pag-rob sets are images")
    c, shape = split.num_classes, split.sample_shape
    data = load_plain_tensor(data_path, f"gradient set (N, {c + 1}, {', '.join(map(str, shape))})",
                             2 + len(shape), DATA_DTYPES)
    if tuple(data.shape[1:]) != (c + 1, *shape):
        raise InteropError(f"{data_path}: expected shape (N, {c + 1}, {', '.join(map(str, shape))}) for the "
                           f"prepared split's {c} classes of {shape}, found {tuple(data.shape)}")
    labels = load_plain_tensor(labels_path, "labels (N,)", 1, LABEL_DTYPES).numpy().astype(np.int64)
    if labels.shape[0] != data.shape[0]:
        raise InteropError(f"{labels_path}: {labels.shape[0]} labels but {data_path} has {data.shape[0]} rows")
    chunks = TensorChunks(data_path, data)
    n = data.shape[0]
    if n == 0:
        raise InteropError(f"{data_path}: the gradient set is empty")
    lo, hi = _scan_range(chunks, 4096)
    space = detect_pixel_space(lo, hi, str(data_path), pixel_space)
    source = _source_info(data_path, labels_path, space)
    dataset = {"name": str(split.meta.get("dataset", split.meta.get("name", "unknown"))),
               "fingerprint": split.fingerprint(), "class_names": list(split.class_names), "split": "train"}
    existed = Path(out).exists()
    try:
        store = create_store(out, "w" if overwrite else "a", num_samples=n, num_classes=c, sample_shape=shape,
                             grad_dtype=grad_dtype, dataset=dataset, source=source,
                             samples_per_shard=samples_per_shard)
    except StoreError as exc:
        raise InteropError(str(exc).replace("use mode 'w'", "pass --overwrite")) from None
    try:
        missing = _write_missing(store, chunks, labels, split, space, str(data_path))
    except InteropError:
        if not existed:  # bad input: a store that never got a valid row is not worth resuming
            shutil.rmtree(out, ignore_errors=True)
        raise
    export_webdataset(out)
    report = verify_store(out)
    if not report.ok:
        raise InteropError(f"{out}: the imported store failed verification: {report.problems[0].message}")
    return ImportResult(n, len(missing), space, (lo, hi))


def _write_missing(store: Any, chunks: TensorChunks, labels: np.ndarray, split: PreparedSplit, space: str,
                   where: str) -> list[int]:
    """Write every shard the store lacks, one shard of the file in memory at a time; return those shards."""
    from tqdm.auto import tqdm

    from pagstore.store import StoreError

    matcher, missing = _Matcher(split), store.missing_shards()
    data_path = where
    for k in tqdm(missing, desc="import pag-rob", unit="shard", disable=len(missing) < 2):
        sl = store.shard_slice(k)
        block = chunks.rows(sl.start, sl.stop)  # (n, C + 1, *S): one shard's rows at a time bounds memory
        u8 = to_uint8(block[:, 0], space, sl.start, str(data_path))
        index = np.array([matcher.match(u8[r], int(labels[sl.start + r]), sl.start + r, str(data_path))
                          for r in range(len(u8))], dtype=np.int64)
        grads = block[:, 1:].astype(np.float32) * np.float32(GRAD_SCALE[space])
        del block
        try:
            store.write_shard(k, u8, split.labels[index], grads, index)
        except StoreError as exc:
            raise InteropError(f"{data_path}: {exc}") from None
    return missing


def _source_info(data_path: str | Path, labels_path: str | Path, space: str) -> dict[str, Any]:
    realization = _REALIZATION.search(Path(data_path).name)
    return {
        "name": "imported",
        "format": "pag-rob",
        "origin": "royg27/PAG-ROB released gradient set",
        "realization": realization.group(1) if realization else None,
        "data_file": Path(data_path).name,
        "data_sha256": sha256_file(data_path),
        "labels_file": Path(labels_path).name,
        "labels_sha256": sha256_file(labels_path),
        "mapping": {
            "pixel_space": space,
            "images": f"{PIXEL_SPACES[space][0]}; x01 * 255 matched exactly to the prepared train split",
            "grads": f"g01 = {GRAD_SCALE[space]:g} * g (chain rule; direction unchanged)",
            "labels": "labels and index from the prepared split, checked equal to the labels file",
            "classes": "class c of the file = class c of the prepared split",
        },
    }


def export_pag_rob(store_path: str | Path, out_dir: str | Path, prefix: str | None = None) -> tuple[Path, Path]:
    """Write ``<prefix>_data.pt`` (float32 (N, C + 1, *S), images in [-1, 1], gradients in that space) and
    ``<prefix>_label.pt`` (int64 (N,)): the files the official training script reads.

    The data tensor is filled shard by shard inside a file-backed tensor, so memory stays bounded.
    Returns the two paths.
    """
    from pagstore.atomic import atomic_path
    from pagstore.store import open_store

    store = open_store(store_path, "r")
    if store.spec.image_dtype != "uint8" or len(store.sample_shape) != 3:
        raise InteropError(f"{store.location}: pag-rob export needs a uint8 image store, found "
                           f"{store.spec.image_dtype} {store.sample_shape}")
    missing = store.missing_shards()
    if missing:
        raise InteropError(f"{store.location}: store incomplete, shard(s) {missing[:5]} missing")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = prefix or default_prefix(store.spec)
    n, c, shape = store.num_samples, store.num_classes, store.sample_shape
    data_path, label_path = out_dir / f"{prefix}_data.pt", out_dir / f"{prefix}_label.pt"
    buffer = out_dir / f".{prefix}_data.buffer"
    numel = n * (c + 1) * int(np.prod(shape))
    try:
        data = torch.from_file(str(buffer), shared=True, size=numel, dtype=torch.float32).view(n, c + 1, *shape)
        labels = torch.empty(n, dtype=torch.int64)
        scale = np.float32(GRAD_SCALE["signed"])
        for k in range(store.num_shards):
            sl = store.shard_slice(k)
            images, lab, grads = store.read(sl)
            data[sl, 0] = torch.from_numpy(images.astype(np.float32) / np.float32(127.5) - np.float32(1.0))
            data[sl, 1:] = torch.from_numpy(grads.astype(np.float32) / scale)
            labels[sl] = torch.from_numpy(lab)
        # File objects, not paths: torch would name the archive after the random temporary file.
        with atomic_path(data_path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
            torch.save(data, fh)
        del data
    finally:
        buffer.unlink(missing_ok=True)
    with atomic_path(label_path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
        torch.save(labels, fh)
    return data_path, label_path


def default_prefix(spec: Any) -> str:
    """``c10_<source>`` for CIFAR-10 stores (the official names), else ``<dataset>_<source>``."""
    src = spec.source.get("realization") if spec.source.get("name") == "imported" else spec.source.get("name")
    ds = {"cifar10": "c10", "cifar100": "c100"}.get(spec.dataset.name, spec.dataset.name)
    return f"{ds}_{src or 'grads'}"
