"""Webdataset export of a gradient store: ``<store>/shards/grads-%06d.tar`` plus ``shards/index.json``.

Each tar holds consecutive store rows, one webdataset sample per image:
``s%08d.image.npy`` (the stored image, uint8 or float32), ``s%08d.cls`` (label, ASCII decimal),
``s%08d.grads.npy`` (K, *S) as stored (grad_dtype, or int8 for codec int8), ``s%08d.index.cls`` (original
dataset index), where the key is the row number in the store; format v2 adds ``s%08d.classes.npy`` (K,) int64
(the class of each stored gradient) and, for codec int8, ``s%08d.grad_scales.npy`` (K,) float32. ``.npy`` members are written by ``np.save(allow_pickle=False)``.
Tars are deterministic (fixed mtime/owner) so an unchanged store exports to byte-identical shards.
``index.json`` = {format_version, num_samples, samples_per_tar, spec, shards: [{name, count, sha256,
first_index}]} and is written last: a reader that finds it finds every shard it lists complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

from pagstore.spec import SUPPORTED_VERSIONS, StoreSpec
from pagstore.store import StoreError, location_str, nonfinite_rows, open_store

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
    per_sample = np.dtype(spec.stored_grad_dtype).itemsize * int(np.prod(spec.grad_shape)) + 4096
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
    index = {"format_version": spec.format_version, "num_samples": spec.num_samples, "samples_per_tar": spt,
             "key_format": KEY_PATTERN, "spec": spec.to_attrs(), "shards": shards}
    tmp = f"{root}/.{INDEX_NAME}.tmp"
    fs.pipe_file(tmp, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    fs.mv(tmp, index_path)
    return index


def _tar_bytes(store: Any, start: int, stop: int) -> bytes:
    spec = store.spec
    images, labels, grads = store.read(slice(start, stop))
    index = store.read_index(slice(start, stop))
    extra: dict[str, np.ndarray] = {}
    if spec.format_version >= 2:
        extra["classes.npy"] = store.read_classes(slice(start, stop))
    if spec.grad_codec == "int8":  # the tar keeps the int8 bytes, not the decoded floats
        rows = np.arange(start, stop)
        grads, extra["grad_scales.npy"] = store._read_checked(("grads", "grad_scales"), rows)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(stop - start):
            key = KEY_PATTERN % (start + i)
            members = {"cls": str(int(labels[i])).encode(), "grads.npy": _npy(grads[i]),
                       "image.npy": _npy(images[i]), "index.cls": str(int(index[i])).encode()}
            members.update({ext: _npy(arr[i]) for ext, arr in extra.items()})
            members = dict(sorted(members.items()))  # one fixed member order
            for ext, payload in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, np.ascontiguousarray(arr), allow_pickle=False)
    return b.getvalue()


def has_export(store_path: str | Path) -> bool:
    """Whether the store has a webdataset export: its ``shards/index.json``, which an export writes last (a
    damaged index is still an export: reading it raises ExportError, never a silent fallback)."""
    fs, root = _fs(shards_location(store_path))
    return bool(fs.exists(f"{root}/{INDEX_NAME}"))


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
    if index["format_version"] not in SUPPORTED_VERSIONS:
        raise ExportError(f"{path}: unsupported format_version {index['format_version']!r}; "
                          f"this pagstore reads {', '.join(map(str, SUPPORTED_VERSIONS))}")
    StoreSpec.from_attrs(index.get("spec", {}), where=path)  # the one place format versions are judged
    total = sum(int(s["count"]) for s in index["shards"])
    if total != index["num_samples"]:
        raise ExportError(f"{path}: shard counts sum to {total}, num_samples says {index['num_samples']}")
    return index


def shard_entries(store_path: str | Path, index: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One {"url", "sha256", "count", "first_index"} per tar, in store order (what the readers check)."""
    index = index if index is not None else read_index(store_path)
    return [{"url": url, "sha256": s.get("sha256"), "count": int(s["count"]),
             "first_index": int(s.get("first_index", 0))}
            for s, url in zip(index["shards"], shard_urls(store_path, index))]


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


def decode_sample(sample: dict[str, Any], spec: StoreSpec | None = None, *, finite: bool = True,
                  with_classes: bool = False) -> tuple[Any, ...]:
    """One raw webdataset sample -> (image as stored (*S), label, grads (K, *S) decoded to grad_dtype, store
    row); with ``with_classes`` a 5th item, the classes (K,) int64 of the grads (v1: 0..C-1).

    With ``spec``, the sample must match it: image/grads shape and dtype, 0 <= label < C and (with
    ``finite``) no NaN/inf in grads or float images; else ExportError naming the tar and the sample key.
    ``stream_batches`` passes ``finite=False`` and checks finiteness once per stacked batch instead.
    """
    url, key = sample.get("__url__", "?"), sample.get("__key__", "?")
    try:
        image = load_npy(sample["image.npy"])
        grads = load_npy(sample["grads.npy"])
        label = int(bytes(sample["cls"]))
        row = int(sample["__key__"][1:])
        classes = load_npy(sample["classes.npy"]) if "classes.npy" in sample else None
        if "grad_scales.npy" in sample:
            from pagstore.codec import decode_int8

            scales = load_npy(sample["grad_scales.npy"])
            if grads.dtype != np.int8 or scales.shape != grads.shape[:1]:
                raise ValueError(f"int8 grads {grads.dtype} {grads.shape} with scales {scales.shape}")
            grads = decode_int8(grads[None], scales[None], spec.grad_dtype if spec else np.float32)[0]
    except (KeyError, ValueError, TypeError, IndexError) as exc:  # UnicodeDecodeError is a ValueError
        raise ExportError(f"{url}: sample {key} is malformed ({type(exc).__name__}: {exc}); run "
                          "`pagstore verify`") from None
    if spec is not None:
        problem = _sample_problem(spec, image, label, grads, finite) or _classes_problem(spec, classes, label)
        if problem:
            raise ExportError(f"{url}: sample {key}: {problem}; run `pagstore verify`")
    if not with_classes:
        return image, label, grads, row
    if classes is None:
        classes = np.arange(grads.shape[0], dtype=np.int64)
    return image, label, grads, row, classes


def _classes_problem(spec: StoreSpec, classes: np.ndarray | None, label: int) -> str:
    """v2 exports carry the classes of each sample: K ids in [0, C), the true class first when K < C."""
    if spec.format_version == 1:
        return ""
    k, c = spec.num_stored_classes, spec.num_classes
    if classes is None:
        return "classes.npy is missing (format v2)"
    if classes.shape != (k,) or classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= c:
        return f"classes are {classes.dtype} {classes.shape}, expected {k} ids in [0, {c})"
    if k < c and int(classes[0]) != label:
        return f"first class {int(classes[0])} is not the label {label}"
    return ""


def _sample_problem(spec: StoreSpec, image: np.ndarray, label: int, grads: np.ndarray, finite: bool) -> str:
    """What is wrong with one decoded sample given the export's spec ("" if nothing)."""
    for name, arr, shape, dtype in (("image", image, spec.sample_shape, spec.image_dtype),
                                    ("grads", grads, spec.grad_shape, spec.grad_dtype)):
        if arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
            return f"{name} is {arr.dtype} {arr.shape}, the spec says {dtype} {tuple(shape)}"
    if not 0 <= label < spec.num_classes:
        return f"label {label} is outside [0, {spec.num_classes})"
    if finite and nonfinite_rows(grads[None])[0]:
        return "grads contain NaN or inf"
    if finite and image.dtype.kind == "f" and nonfinite_rows(image[None])[0]:
        return "image contains NaN or inf"
    return ""


_NPY_HEADERS: dict[bytes, tuple[np.dtype, tuple[int, ...], int, int]] = {}


def load_npy(payload: bytes | memoryview) -> np.ndarray:
    """Decode ``.npy`` bytes without pickle. Headers repeat across samples, so each distinct header is
    parsed once (``np.load`` re-parses it with ``ast`` per call: the stream's main cost otherwise)."""
    buf = memoryview(payload)
    if bytes(buf[:6]) == b"\x93NUMPY" and buf[6] == 1:
        end = 10 + int.from_bytes(buf[8:10], "little")
        header = bytes(buf[:end])
        parsed = _NPY_HEADERS.get(header)
        if parsed is None:
            meta = np.lib.format.read_array_header_1_0(io.BytesIO(header[8:]))
            shape, fortran, dtype = meta
            if fortran or dtype.hasobject:
                return np.load(io.BytesIO(buf), allow_pickle=False)
            parsed = _NPY_HEADERS.setdefault(header, (dtype, tuple(shape), end, math.prod(shape)))
        dtype, shape, offset, count = parsed
        return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
    return np.load(io.BytesIO(buf), allow_pickle=False)


def open_tar_streams(data: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pipeline stage: {"url", ...} -> {"url", ..., "stream"} opened with fsspec (local paths, s3://,
    memory://...). A missing or unreadable tar -> ExportError naming it."""
    for source in data:
        try:
            opener = fsspec.open(source["url"], "rb")
            ukey = opener.fs.ukey(opener.path)  # size, mtime...: tells tar_samples whether it changed
            stream = opener.open()
        except OSError as exc:
            raise ExportError(f"{source['url']}: tar missing or unreadable ({type(exc).__name__}: {exc}); run "
                              "`pagstore verify`") from None
        with stream:
            yield {**source, "stream": stream, "ukey": ukey}


def tar_samples(data: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pipeline stage: {"url", "stream"[, "sha256", "count", "ukey"]} -> webdataset samples {"__key__",
    "__url__", ext: payload}.

    Reads each tar whole (tens of MiB) and walks its 512-byte ustar headers directly, handing out
    zero-copy views: several times faster than ``tarfile`` streaming. Members are grouped into samples by
    the key before the first dot, as webdataset does; tars with pax/GNU extensions go through ``tarfile``.
    Given the index entry's ``sha256`` and ``count``, a tar that does not match them (truncated, flipped
    bytes) -> ExportError naming it, before any of its samples is yielded.

    sha256 (~1.7 GB/s) costs about as much CPU as decoding the tar, so a tar is hashed once per process:
    later epochs skip the hash while its ``ukey`` (size, mtime... from ``open_tar_streams``) is unchanged.
    (Hashing in a thread while decoding was measured slower on a loaded 2-core machine.) The sample count
    is checked every time.
    """
    for source in data:
        url = source["url"]
        try:
            blob = source["stream"].read()
        except OSError as exc:
            raise ExportError(f"{url}: cannot read the tar ({type(exc).__name__}: {exc}); run `pagstore verify`") \
                from None
        want, ukey = source.get("sha256"), source.get("ukey")
        if want is not None and (ukey is None or _HASHED_TARS.get(url) != (want, ukey)):
            got = hashlib.sha256(blob).hexdigest()
            if got != want:
                raise ExportError(f"{url}: sha256 {got[:12]}.. does not match index.json {want[:12]}.. (tar "
                                  "damaged or replaced); run `pagstore verify`")
            if ukey is not None:
                _HASHED_TARS[url] = (want, ukey)
        try:
            members = _ustar_members(blob)
            if members is None:
                with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                    members = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
        except (ExportError, tarfile.TarError, UnicodeDecodeError) as exc:
            raise ExportError(f"{url}: {exc} (run `pagstore verify`)") from None
        samples = list(_group_samples(url, members))
        count = source.get("count")
        if count is not None and len(samples) != int(count):
            raise ExportError(f"{url}: holds {len(samples)} samples, index.json says {count}; run `pagstore verify`")
        yield from samples


# url -> (sha256, ukey) of the tars this process hashed and found matching their index.json entry.
_HASHED_TARS: dict[str, tuple[str, Any]] = {}


def _group_samples(url: str, members: list[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
    """Consecutive members sharing the key before the first dot -> one sample dict."""
    sample: dict[str, Any] = {}
    for name, payload in members:
        folder, slash, base = name.rpartition("/")
        key, _, ext = base.partition(".")
        key = folder + slash + key
        if sample and sample["__key__"] != key:
            yield sample
            sample = {}
        if not sample:
            sample = {"__key__": key, "__url__": url}
        sample[ext] = payload
    if sample:
        yield sample


def _ustar_members(blob: bytes) -> list[tuple[str, memoryview]] | None:
    """(name, payload view) of the regular files of a plain ustar tar; None if it uses extensions."""
    view, off, out = memoryview(blob), 0, []
    while off + 512 <= len(blob):
        header = blob[off:off + 512]
        if header.count(0) == 512:  # end-of-archive block
            break
        kind = header[156:157]
        if kind not in (b"0", b"\0", b"5"):
            return None  # pax (x/g), GNU long name (L), links...: let tarfile handle it
        try:
            size = int(header[124:136].rstrip(b"\0 ").decode() or "0", 8)
        except ValueError as exc:
            raise ExportError(f"corrupt tar header at byte {off} ({exc})") from None
        name = header[:100].rstrip(b"\0").decode()
        prefix = header[345:500].rstrip(b"\0").decode() if header[257:262] == b"ustar" else ""
        if kind != b"5":
            out.append((f"{prefix}/{name}" if prefix else name, view[off + 512: off + 512 + size]))
        off += 512 + -(-size // 512) * 512
    return out
