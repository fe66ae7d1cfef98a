"""Rewrite a format-v1 gradient store as format v2 (``pagstore migrate STORE``).

v1 stores hold all C classes in class order, so the v2 store is K = C with classes 0..C-1: the same gradients,
bit for bit with codec "raw" (or int8-encoded with ``grad_codec="int8"``), no ``created_at``. The new store is
written beside the old one and swapped in only when complete and verified, so an interrupted migration
leaves the v1 store as it was. A webdataset export, if the v1 store had one, is written again for v2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pagstore.shards import INDEX_NAME, SHARDS_DIR, export_webdataset
from pagstore.store import StoreError, create_store, is_url, location_str, open_store
from pagstore.verify import verify_store


def migrate_store(path: str | Path, *, grad_codec: str = "raw") -> dict:
    """Rewrite the v1 store at local ``path`` as v2 in place; returns the new spec's attributes.

    Raises:
        StoreError: not a local store, not format v1, incomplete, or the rewritten store fails verification.
    """
    loc = location_str(path)
    if is_url(loc):
        raise StoreError(f"{loc}: migrate rewrites local stores only (copy it here, migrate, copy it back)")
    old = open_store(loc, "r")
    if old.spec.format_version != 1:
        raise StoreError(f"{loc}: already format_version {old.spec.format_version}; nothing to migrate")
    if not old.is_complete():
        raise StoreError(f"{loc}: incomplete v1 store (missing shards {old.missing_shards()[:20]}); finish or "
                         "redo it instead of migrating")
    spec = old.spec
    had_export = (Path(loc) / SHARDS_DIR / INDEX_NAME).exists()
    tmp = Path(f"{loc}.migrating")
    if tmp.exists():
        shutil.rmtree(tmp)  # a previous, interrupted migration
    new = create_store(tmp, "w", num_samples=spec.num_samples, num_classes=spec.num_classes,
                       sample_shape=spec.sample_shape, image_dtype=spec.image_dtype, grad_dtype=spec.grad_dtype,
                       dataset=spec.dataset.to_attrs(), source=dict(spec.source),
                       samples_per_shard=spec.samples_per_shard,
                       grad_mantissa_bits=spec.grad_mantissa_bits if grad_codec == "raw" else None,
                       grad_codec=grad_codec)
    for k in range(spec.num_shards):
        sl = spec.shard_slice(k)
        images, labels, grads = old.read(sl)
        new.write_shard(k, images, labels, grads, old.read_index(sl))
    if had_export:
        export_webdataset(tmp)
    report = verify_store(tmp)
    if not report.ok:
        raise StoreError(f"{tmp}: the migrated store fails verification ({report.problems[0].message}); the v1 "
                         f"store at {loc} is unchanged")
    backup = Path(f"{loc}.v1-old")
    Path(loc).rename(backup)
    tmp.rename(loc)
    shutil.rmtree(backup)
    return open_store(loc).spec.to_attrs()
