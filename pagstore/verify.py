"""Integrity check of a gradient store (and of its webdataset export, if present).

:func:`verify_store` never lets a library traceback escape for bad data: spec refusals, missing arrays,
undecodable or missing zarr shard files, NaN/inf, out-of-range labels, incomplete shards, tar checksum
mismatches and exported samples that break the spec or differ from their zarr rows all become
:class:`Problem` entries naming the array, the shard file or tar and the sample range or sample index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import re

import fsspec
import numpy as np
import zarr

# verify sits above the store and its export: it imports both, neither imports it (no import circle).
from pagstore.shards import INDEX_NAME, KEY_PATTERN, ExportError, decode_sample, read_index, shard_entries, \
    shards_location, tar_samples
from pagstore.shards import check_export as _check_export
from pagstore.spec import SpecError, StoreSpec
from pagstore.store import StoreError, is_url, location_str, open_store, shard_file_key


@dataclass
class Problem:
    """One finding. ``samples`` = [first, last] row range, ``sample`` = one offending row."""

    kind: str  # open | spec | incomplete | missing | decode | nonfinite | label | classes | index | export
    message: str
    array: str | None = None
    shard: int | None = None
    file: str | None = None
    samples: list[int] | None = None
    sample: int | None = None


@dataclass
class VerifyReport:
    """Result of :func:`verify_store`; ``ok`` is True when there are no problems."""

    path: str
    num_samples: int | None = None
    num_shards: int | None = None
    shards_checked: int = 0
    export_checked: bool = False
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "num_samples": self.num_samples, "num_shards": self.num_shards,
                "shards_checked": self.shards_checked, "export_checked": self.export_checked,
                "problems": [asdict(p) for p in self.problems]}


def verify_store(path: str | Path, *, check_export: bool = True) -> VerifyReport:
    """Check spec, arrays, completeness and every shard's files and data; if an export is present, its tar
    checksums and every exported sample (spec checks, equal to its zarr row)."""

    loc = location_str(path)
    report = VerifyReport(path=loc)
    try:
        store = open_store(loc, "r")
    except (SpecError, StoreError) as exc:
        report.problems.append(Problem("spec" if isinstance(exc, SpecError) else "open", str(exc)))
        return report
    except Exception as exc:  # corrupt metadata (bad JSON, unknown codec...): report, don't crash
        report.problems.append(Problem("open", f"{loc}: cannot open the store: {type(exc).__name__}: {exc}"))
        return report
    report.num_samples, report.num_shards = store.num_samples, store.num_shards
    try:
        done = store.done_flags()
    except Exception as exc:
        report.problems.append(Problem("decode", f"{loc}/done: cannot read the completion record: {exc}",
                                       array="done"))
        done = np.zeros(store.num_shards, dtype=bool)
    missing = [int(k) for k in np.flatnonzero(~done)]
    if missing:
        report.problems.append(Problem("incomplete", f"{loc}: {len(missing)} of {store.num_shards} shards not "
                                       f"written: {missing[:20]}{' ...' if len(missing) > 20 else ''}"))
    for k in np.flatnonzero(done):
        report.problems.extend(_check_shard(store, int(k)))
        report.shards_checked += 1
    if check_export:
        shards = shards_location(loc)
        present = (Path(shards) / INDEX_NAME).exists() if not is_url(loc) else _url_exists(f"{shards}/{INDEX_NAME}")
        if present:
            report.export_checked = True
            bad_tars = set()
            for p in _check_export(loc):
                report.problems.append(Problem(kind="export", message=p["message"], file=p.get("file"),
                                               samples=p.get("samples")))
                bad_tars.add(p.get("file"))
            stale = _stale_export(loc, store)
            report.problems.extend(stale)
            if None not in bad_tars and not stale:
                report.problems.extend(_check_export_samples(loc, store, bad_tars))
    return report


def _stale_export(loc: str, store: Any) -> list[Problem]:
    """The export must describe this very store (a recreated store has another spec, e.g. created_at)."""
    try:
        exported = read_index(loc).get("spec")
    except (ExportError, SpecError):
        return []  # already reported by check_export
    ours = store.spec.to_attrs()
    theirs = StoreSpec.from_attrs(exported or {}, where=f"{loc}/shards/index.json").to_attrs()  # normalised
    diff = sorted(k for k in ours if ours[k] != theirs.get(k))
    if diff:
        return [Problem("export", f"{loc}/shards: the export was made from another store (spec differs in "
                        f"{', '.join(diff)}); run `pagstore export {loc}` again")]
    return []


def _check_export_samples(loc: str, store: Any, skip: set[str]) -> list[Problem]:
    """Decode every tar whose checksum matched: each sample must pass the spec checks the stream applies
    (shape, dtype, label, finiteness), the tar must hold exactly its rows in order, and each sample must
    equal the zarr row it names (a sha256 only proves the tar is what the exporter wrote)."""
    out: list[Problem] = []
    for entry in shard_entries(loc):
        url = entry["url"]
        if url in skip:
            continue  # missing or checksum mismatch: already reported
        first, count = entry["first_index"], entry["count"]
        samples = [first, first + count - 1]
        try:
            with fsspec.open(url, "rb") as f:
                decoded = [decode_sample(s, store.spec) for s in tar_samples([{"url": url, "stream": f,
                                                                              "count": count}])]
        except ExportError as exc:
            out.append(Problem("export", str(exc), file=url, samples=samples, sample=_key_row(str(exc))))
            continue
        except Exception as exc:  # verify reports, never crashes, whatever the bytes are
            out.append(Problem("export", f"{url}: cannot decode the tar: {type(exc).__name__}: {exc}", file=url,
                               samples=samples))
            continue
        rows = [d[3] for d in decoded]
        if rows != list(range(first, first + count)):
            wrong = next(i for i, r in enumerate(rows) if r != first + i)
            out.append(Problem("export", f"{url}: sample {KEY_PATTERN % rows[wrong]} is at position {wrong}, "
                               f"where index.json puts row {first + wrong}", file=url, samples=samples))
            continue
        out.extend(_compare_rows(store, url, decoded, samples))
    return out


def _compare_rows(store: Any, url: str, decoded: list[tuple], samples: list[int]) -> list[Problem]:
    """Samples of one tar vs the zarr rows they name (zarr read problems are reported by the shard checks)."""
    rows = np.asarray([d[3] for d in decoded], dtype=np.int64)
    try:
        images, labels, grads = store.read(rows)
    except StoreError:
        return []
    for j, (image, label, g, row) in enumerate(decoded):
        what = [name for name, same in (("image", np.array_equal(image, images[j])), ("label", label == labels[j]),
                                        ("grads", np.array_equal(g, grads[j]))) if not same]
        if what:
            return [Problem("export", f"{url}: sample {KEY_PATTERN % row}: {', '.join(what)} differ from zarr row "
                            f"{row}; run `pagstore export {store.location}` again", file=url, samples=samples,
                            sample=int(row))]
    return []


def _key_row(message: str) -> int | None:
    """The store row of the sample key an ExportError names (``sample s00000010``), if any."""
    m = re.search(r"sample s(\d+)", message)
    return int(m.group(1)) if m else None


def _url_exists(url: str) -> bool:
    fs, p = fsspec.core.url_to_fs(url)
    return fs.exists(p)


def _check_shard(store: Any, k: int) -> list[Problem]:
    sl = store.shard_slice(k)
    rows = [sl.start, sl.stop - 1]
    out: list[Problem] = []
    data = {}
    for name, arr in store.arrays.items():
        if name == "done":
            continue
        chunk_key = shard_file_key(name, arr.ndim, k)
        # A lost file would read as the fill value (zeros): check it exists before decoding.
        if not zarr.core.sync.sync(store._group.store.exists(chunk_key)):
            out.append(Problem("missing", f"{store.location}/{chunk_key}: shard {k} of {name!r} (samples "
                               f"{rows[0]}..{rows[1]}) is marked done but its file is missing",
                               array=name, shard=k, file=f"{store.location}/{chunk_key}", samples=rows))
            continue
        try:
            data[name] = arr[sl]
        except Exception as exc:  # zarr/blosc raise assorted types for corrupt bytes
            out.append(Problem("decode", f"{store.location}/{chunk_key}: cannot decode shard {k} of {name!r} "
                               f"(samples {rows[0]}..{rows[1]}): {type(exc).__name__}: {exc}",
                               array=name, shard=k, file=f"{store.location}/{chunk_key}", samples=rows))
    for name in ("grads", "grad_scales", "images"):
        if name in data and np.issubdtype(data[name].dtype, np.floating):
            ok = np.isfinite(data[name].reshape(data[name].shape[0], -1)).all(axis=1)
            if not ok.all():
                i = sl.start + int(np.flatnonzero(~ok)[0])
                out.append(Problem("nonfinite", f"{store.location}: {name} of sample {i} (shard {k}) contain NaN "
                                   f"or inf ({int((~ok).sum())} samples in this shard)", array=name, shard=k,
                                   sample=i))
    if "labels" in data:
        lb = data["labels"]
        bad = np.flatnonzero((lb < 0) | (lb >= store.num_classes))
        if bad.size:
            i = sl.start + int(bad[0])
            out.append(Problem("label", f"{store.location}: label {int(lb[bad[0]])} of sample {i} (shard {k}) is "
                               f"outside [0, {store.num_classes})", array="labels", shard=k, sample=i))
    if "classes" in data:
        out.extend(_check_classes(store, k, data["classes"], data.get("labels")))
    if "index" in data and data["index"].size and data["index"].min() < 0:
        i = sl.start + int(np.flatnonzero(data["index"] < 0)[0])
        out.append(Problem("index", f"{store.location}: negative dataset index at sample {i} (shard {k})",
                           array="index", shard=k, sample=i))
    return out


def _check_classes(store: Any, k: int, classes: np.ndarray, labels: np.ndarray | None) -> list[Problem]:
    """v2: each row's K class ids lie in [0, C), are distinct, and start with the label when K < C."""
    sl, c = store.shard_slice(k), store.num_classes
    bad = ((classes < 0) | (classes >= c)).any(axis=1) | (np.diff(np.sort(classes, axis=1), axis=1) == 0).any(axis=1)
    if labels is not None and classes.shape[1] < c:
        bad |= classes[:, 0] != labels
    if not bad.any():
        return []
    j = int(np.flatnonzero(bad)[0])
    return [Problem("classes", f"{store.location}: classes {classes[j].tolist()} of sample {sl.start + j} (shard {k}) "
                    f"are not {classes.shape[1]} distinct ids in [0, {c}) led by the label", array="classes", shard=k,
                    sample=sl.start + j)]
