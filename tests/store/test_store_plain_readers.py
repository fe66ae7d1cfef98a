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
    assert group.attrs["format_version"] == 2 and group.attrs["grad_dtype"] == "float16"
    assert group.attrs["grad_codec"] == "raw" and group.attrs["num_target_classes"] == 3
    assert "created_at" not in group.attrs  # no wall-clock time in a hashed file
    np.testing.assert_array_equal(group["classes"][:], np.tile(np.arange(3), (20, 1)))
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


def test_plain_zarr_decodes_int8_k_of_c(tmp_path, monkeypatch) -> None:
    """docs/store-format.md's plain-zarr recipe for codec int8 and K < C: q * scale, classes per sample."""
    import store_fixtures

    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2-int8"]))
    path = tmp_path / "s"
    filled_store(path, num_samples=20, samples_per_shard=8)
    exp = expected(20, 8, (1, 4, 4))
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["grad_codec"] == "int8" and group["grads"].dtype == np.int8
    grads = group["grads"][:].astype("float32") * group["grad_scales"][:][:, :, None, None, None]
    np.testing.assert_array_equal(grads.astype(np.float16), exp["grads"].astype(np.float16))
    classes = group["classes"][:]
    assert classes.shape == (20, 2) and (classes[:, 0] == group["labels"][:]).all()
    np.testing.assert_array_equal(classes, exp["classes"])


def test_committed_v1_fixture_reads_with_plain_zarr_and_pagstore(tmp_path) -> None:
    """tests/fixtures/v1_store was written by the format-v1 writer: both readers still read it."""
    import shutil
    from pathlib import Path

    import store_fixtures

    from pagstore.store import open_store
    from pagstore.verify import verify_store

    src = Path(__file__).parents[1] / "fixtures" / "v1_store"
    path = tmp_path / "v1"
    shutil.copytree(src, path)
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["format_version"] == 1 and "created_at" in group.attrs and "classes" not in group
    store = open_store(path)
    assert store.spec.format_version == 1 and store.num_stored_classes == 3
    images, labels, grads = store.read(np.arange(20))
    want = {"images": [], "labels": [], "grads": []}
    for k, s in enumerate(range(0, 20, 8)):
        d = store_fixtures.shard_data(k, s, min(s + 8, 20), (1, 4, 4))
        for name in want:
            want[name].append(d[name])
    np.testing.assert_array_equal(images, np.concatenate(want["images"]))
    np.testing.assert_array_equal(labels, np.concatenate(want["labels"]))
    np.testing.assert_array_equal(grads, np.concatenate(want["grads"]).astype(np.float16))
    np.testing.assert_array_equal(store.read_classes([3, 1]), [[0, 1, 2], [0, 1, 2]])
    report = verify_store(path)
    assert report.ok and report.export_checked, report.to_dict()


def test_plain_webdataset_decodes_int8_k_of_c(tmp_path, monkeypatch) -> None:
    """docs/store-format.md's plain-webdataset recipe for a v2 int8, K < C export."""
    import store_fixtures

    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2-int8"]))
    path = tmp_path / "s"
    filled_store(path, num_samples=20, samples_per_shard=8)
    index = export_webdataset(path, samples_per_tar=6)
    exp = expected(20, 8, (1, 4, 4))
    urls = [str(path / "shards" / s["name"]) for s in index["shards"]]
    grads, classes = [], []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode():
        g = sample["grads.npy"]
        assert g.dtype == np.int8
        grads.append(g.astype("float32") * sample["grad_scales.npy"][:, None, None, None])
        classes.append(sample["classes.npy"])
    np.testing.assert_array_equal(np.stack(grads).astype(np.float16), exp["grads"].astype(np.float16))
    np.testing.assert_array_equal(np.stack(classes), exp["classes"])
