"""Webdataset export of a gradient store: ``<store>/shards/grads-%06d.tar`` plus ``shards/index.json``.

Each tar holds consecutive store rows, one webdataset sample per image:
``s%08d.image.npy`` (the stored image, uint8 or float32), ``s%08d.cls`` (label, ASCII decimal),
``s%08d.grads.npy`` (C, *S) in the store's grad dtype, ``s%08d.index.cls`` (original dataset index), where
the key is the row number in the store. ``.npy`` members are written by ``np.save(allow_pickle=False)``.
Tars are deterministic (fixed mtime/owner) so an unchanged store exports to byte-identical shards.
``index.json`` = {format_version, num_samples, samples_per_tar, spec, shards: [{name, count, sha256,
first_index}]} and is written last: a reader that finds it finds every shard it lists complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

from pagstore.spec import FORMAT_VERSION, StoreSpec
from pagstore.store import StoreError, location_str, open_store

SHARDS_DIR = "shards"
INDEX_NAME = "index.json"
TAR_PATTERN = "grads-%06d.tar"
KEY_PATTERN = "s%08d"
TAR_BYTES = 64 << 20  # ~64 MiB tars: large sequential reads, few files


class ExportError(ValueError):
    """The webdataset export is missing or inconsistent."""


def shards_location(store_path: str | Path) -> str:
    """Where the export of ``store_path`` lives (path or URL)."""
    return f"{location_str(store_path)}/{SHARDS_DIR}"


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(url)
    return fs, root.rstrip("/")


def export_webdataset(store_path: str | Path, samples_per_tar: int | None = None) -> dict[str, Any]:
    """Write the webdataset export of a complete store; return the index written to ``shards/index.json``.

    Args:
        samples_per_tar: rows per tar; default ~64 MiB of samples per tar.
    Raises:
        StoreError if the store is incomplete (missing shards are named).
    """
    from tqdm.auto import tqdm

    store = open_store(store_path, "r")
    missing = store.missing_shards()
    if missing:
        raise StoreError(f"{store.location}: cannot export an incomplete store; missing shards {missing[:20]}"
                         f"{' ...' if len(missing) > 20 else ''}")
    spec = store.spec
    per_sample = np.dtype(spec.grad_dtype).itemsize * int(np.prod(spec.grad_shape)) + 4096
    spt = samples_per_tar or max(1, TAR_BYTES // per_sample)
    if spt < 1:
        raise ValueError(f"samples_per_tar must be >= 1, got {spt}")
    fs, root = _fs(shards_location(store_path))
    fs.makedirs(root, exist_ok=True)
    index_path = f"{root}/{INDEX_NAME}"
    if fs.exists(index_path):
        fs.rm(index_path)  # first: a half-replaced export must never look valid
    shards = []
    starts = range(0, spec.num_samples, spt)
    for t, start in enumerate(tqdm(starts, desc="export", unit="tar", disable=None)):
        stop = min(start + spt, spec.num_samples)
        data = _tar_bytes(store, start, stop)
        name = TAR_PATTERN % t
        tmp = f"{root}/.{name}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, f"{root}/{name}")
        shards.append({"name": name, "count": stop - start, "first_index": start,
                       "sha256": hashlib.sha256(data).hexdigest()})
    keep = {s["name"] for s in shards}
    for old in fs.glob(f"{root}/grads-*.tar"):
        if Path(old).name not in keep:
            fs.rm(old)
    index = {"format_version": FORMAT_VERSION, "num_samples": spec.num_samples, "samples_per_tar": spt,
             "key_format": KEY_PATTERN, "spec": spec.to_attrs(), "shards": shards}
    tmp = f"{root}/.{INDEX_NAME}.tmp"
    fs.pipe_file(tmp, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    fs.mv(tmp, index_path)
    return index


def _tar_bytes(store: Any, start: int, stop: int) -> bytes:
    images, labels, grads = store.read(slice(start, stop))
    index = store.read_index(slice(start, stop))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(stop - start):
            key = KEY_PATTERN % (start + i)
            members = {"cls": str(int(labels[i])).encode(), "grads.npy": _npy(grads[i]),
                       "image.npy": _npy(images[i]), "index.cls": str(int(index[i])).encode()}
            for ext, payload in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, np.ascontiguousarray(arr), allow_pickle=False)
    return b.getvalue()


def read_index(store_path: str | Path) -> dict[str, Any]:
    """Load and check ``shards/index.json`` of a store (ExportError naming what is wrong)."""
    fs, root = _fs(shards_location(store_path))
    path = f"{root}/{INDEX_NAME}"
    try:
        with fs.open(path, "rb") as f:
            index = json.loads(f.read())
    except FileNotFoundError:
        raise ExportError(f"{path}: no webdataset export (run `pagstore export {location_str(store_path)}`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from None
    missing = [k for k in ("format_version", "num_samples", "shards") if k not in index]
    if missing:
        raise ExportError(f"{path}: missing key(s) {missing}")
    if index["format_version"] != FORMAT_VERSION:
        raise ExportError(f"{path}: unsupported format_version {index['format_version']!r}; "
                          f"this pagstore reads {FORMAT_VERSION}")
    StoreSpec.from_attrs(index.get("spec", {}), where=path)  # the one place format versions are judged
    total = sum(int(s["count"]) for s in index["shards"])
    if total != index["num_samples"]:
        raise ExportError(f"{path}: shard counts sum to {total}, num_samples says {index['num_samples']}")
    return index


def shard_urls(store_path: str | Path, index: dict[str, Any] | None = None) -> list[str]:
    """Full paths/URLs of the tars, in store order."""
    index = index if index is not None else read_index(store_path)
    base = shards_location(store_path)
    return [f"{base}/{s['name']}" for s in index["shards"]]


def check_export(store_path: str | Path) -> list[dict[str, Any]]:
    """Problems with the export (missing tars, sha256 mismatches) as dicts; [] when it is intact."""
    problems: list[dict[str, Any]] = []
    try:
        index = read_index(store_path)
    except ExportError as exc:
        return [{"kind": "export", "message": str(exc)}]
    for shard, url in zip(index["shards"], shard_urls(store_path, index)):
        samples = [shard["first_index"], shard["first_index"] + shard["count"] - 1]
        try:
            with fsspec.open(url, "rb") as f:
                digest = _sha256(f)
        except FileNotFoundError:
            problems.append({"kind": "export", "file": url, "samples": samples, "message": f"{url}: tar missing"})
            continue
        if digest != shard["sha256"]:
            problems.append({"kind": "export", "file": url, "samples": samples,
                             "message": f"{url}: sha256 {digest[:12]}.. does not match index.json "
                                        f"{shard['sha256'][:12]}.. (samples {samples[0]}..{samples[1]})"})
    return problems


def _sha256(f: Any) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def decode_sample(sample: dict[str, Any]) -> tuple[np.ndarray, int, np.ndarray, int]:
    """One raw webdataset sample -> (image as stored, label, grads (C, *S) as stored, store row)."""
    try:
        image = np.load(io.BytesIO(sample["image.npy"]), allow_pickle=False)
        grads = np.load(io.BytesIO(sample["grads.npy"]), allow_pickle=False)
        label = int(sample["cls"])
        row = int(sample["__key__"][1:])
    except (KeyError, ValueError) as exc:
        raise ExportError(f"{sample.get('__url__', '?')}: sample {sample.get('__key__', '?')} is malformed "
                          f"({exc})") from None
    return image, label, grads, row


def open_tar_streams(data: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pipeline stage: {"url"} -> {"url", "stream"} opened with fsspec (local paths, s3://, memory://...)."""
    for source in data:
        with fsspec.open(source["url"], "rb") as stream:
            yield {**source, "stream": stream}
