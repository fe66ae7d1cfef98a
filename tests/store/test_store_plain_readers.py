"""The format is readable without pagstore: plain zarr for the store, plain webdataset for the export."""

from __future__ import annotations

import json

import numpy as np
import webdataset as wds
import zarr
from store_fixtures import expected, filled_store

from pagstore.shards import export_webdataset


def test_plain_zarr_reads_arrays_and_spec(tmp_path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=20, samples_per_shard=8)
    exp = expected(20, 8, (1, 4, 4))
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["format_version"] == 1 and group.attrs["grad_dtype"] == "float16"
    assert group.attrs["dataset"]["class_names"] == ["zero", "one", "two"]
    assert group["grads"].shards[0] == group.attrs["samples_per_shard"] == 8
    np.testing.assert_array_equal(group["images"][:], exp["images"])
    np.testing.assert_array_equal(group["labels"][:], exp["labels"])
    np.testing.assert_array_equal(group["grads"][:], exp["grads"].astype(np.float16))
    np.testing.assert_array_equal(group["index"][:], exp["index"])
    assert group["done"][:].tolist() == [True, True, True]


def test_plain_webdataset_reads_tars(tmp_path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=20, samples_per_shard=8)
    index = export_webdataset(path, samples_per_tar=6)
    exp = expected(20, 8, (1, 4, 4))
    on_disk = json.loads((path / "shards" / "index.json").read_text())
    assert on_disk == index and [s["count"] for s in index["shards"]] == [6, 6, 6, 2]
    urls = [str(path / "shards" / s["name"]) for s in index["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode())
    assert [s["__key__"] for s in samples] == [f"s{i:08d}" for i in range(20)]
    np.testing.assert_array_equal(np.stack([s["image.npy"] for s in samples]), exp["images"])
    np.testing.assert_array_equal(np.stack([s["grads.npy"] for s in samples]), exp["grads"].astype(np.float16))
    assert [s["cls"] for s in samples] == exp["labels"].tolist()
    assert [s["index.cls"] for s in samples] == exp["index"].tolist()


def test_export_is_deterministic_and_replaces_old_tars(tmp_path) -> None:
    path = tmp_path / "s"
    filled_store(path, num_samples=20, samples_per_shard=8)
    first = export_webdataset(path, samples_per_tar=5)
    second = export_webdataset(path, samples_per_tar=5)
    assert first["shards"] == second["shards"]  # byte-identical tars: same sha256
    export_webdataset(path, samples_per_tar=10)
    names = sorted(p.name for p in (path / "shards").iterdir())
    assert names == ["grads-000000.tar", "grads-000001.tar", "index.json"]  # no tmp files, no stale tars
