"""Format v2: the int8 codec, the K-of-C class choice, byte-identical rewrites, `pagstore migrate` of the
committed v1 fixture (written by the v1 writer)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import store_fixtures
import zarr
from store_fixtures import expected, filled_store

from pagstore.classes import choose_classes
from pagstore.codec import decode_int8, encode_int8
from pagstore.store import StoreError, open_store
from pagstore.verify import verify_store

REPO = Path(__file__).parents[2]
sys.path.insert(0, str(REPO))
from tests.helpers.doc_commands import run_documented  # noqa: E402

V1_FIXTURE = REPO / "tests" / "fixtures" / "v1_store"


def _tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_int8_codec_error_is_bounded_and_keeps_direction() -> None:
    rng = np.random.default_rng(0)
    g = rng.standard_t(4, size=(50, 3, 3, 8, 8)).astype(np.float32)  # heavy-tailed, like real gradients
    g[0, 1] = 0.0  # an all-zero row stays zero (scale 0)
    q, s = encode_int8(g)
    assert q.dtype == np.int8 and s.shape == (50, 3) and s.dtype == np.float32 and s[0, 1] == 0
    d = decode_int8(q, s)
    assert np.all(np.abs(d - g) <= s[:, :, None, None, None] / 2 + 1e-7)
    flat_g, flat_d = g.reshape(150, -1), d.reshape(150, -1)
    keep = np.linalg.norm(flat_g, axis=1) > 0
    cos = (flat_g * flat_d).sum(1)[keep] / (np.linalg.norm(flat_g, axis=1) * np.linalg.norm(flat_d, axis=1))[keep]
    assert cos.min() > 0.999, cos.min()
    assert np.array_equal(decode_int8(q, s, np.float16), d.astype(np.float16))


def test_classes_true_first_distinct_and_independent_of_batching() -> None:
    labels = np.array([0, 4, 9, 4, 2])
    index = np.array([10, 11, 12, 13, 14])
    cl = choose_classes(labels, index, 10, 4, seed=3)
    assert cl.shape == (5, 4) and (cl[:, 0] == labels).all()
    assert all(len(set(row)) == 4 for row in cl.tolist()) and cl.min() >= 0 and cl.max() < 10
    again = np.concatenate([choose_classes(labels[i:i + 2], index[i:i + 2], 10, 4, seed=3) for i in (0, 2, 4)])
    assert np.array_equal(cl, again)  # a sample's classes depend on (seed, index) only
    assert not np.array_equal(cl, choose_classes(labels, index, 10, 4, seed=4))
    assert np.array_equal(choose_classes(labels, index, 10, 10, seed=3), np.tile(np.arange(10), (5, 1)))


@pytest.mark.parametrize("variant", ["v2", "v2-K2-int8"])
def test_identical_writes_give_byte_identical_stores(tmp_path: Path, monkeypatch, variant: str) -> None:
    from pagstore.shards import export_webdataset

    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[variant]))
    digests = []
    for name in ("a", "b"):
        filled_store(tmp_path / name, num_samples=20, samples_per_shard=8)
        export_webdataset(tmp_path / name, samples_per_tar=7)
        digests.append(_tree_digest(tmp_path / name))
    assert digests[0] == digests[1]  # metadata included: no wall-clock time anywhere
    assert "created_at" not in (tmp_path / "a" / "zarr.json").read_text()
    assert "created_at" not in (tmp_path / "a" / "shards" / "index.json").read_text()
    assert "zarr.json" in digests[0] and "shards/index.json" in digests[0]


def test_k_of_c_write_rejects_bad_classes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2"]))
    store = store_fixtures.new_store(tmp_path / "s", num_samples=8, samples_per_shard=8)
    d = store_fixtures.shard_data(0, 0, 8, (1, 4, 4), num_target_classes=2)
    with pytest.raises(StoreError, match="needs the classes"):
        store.write_shard(0, d["images"], d["labels"], d["grads"], d["index"])
    bad = d["classes"].copy()
    bad[3] = bad[3, ::-1]  # true class not first
    with pytest.raises(StoreError, match="of sample 3 must be K=2 distinct classes"):
        store.write_shard(0, d["images"], d["labels"], d["grads"], d["index"], bad)
    assert store.missing_shards() == [0]


def test_verify_names_a_hand_edited_class(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2"]))
    filled_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    arr = zarr.open_group(str(tmp_path / "s"), mode="r+")["classes"]
    cl = arr[:]
    cl[11, 1] = cl[11, 0]  # a duplicated class
    arr[:] = cl
    report = verify_store(tmp_path / "s")
    assert [p.kind for p in report.problems] == ["classes"] and report.problems[0].sample == 11


def test_pagstore_migrate_rewrites_the_v1_fixture_as_v2(tmp_path: Path) -> None:
    shutil.copytree(V1_FIXTURE, tmp_path / "stores" / "sbg")
    before = open_store(tmp_path / "stores" / "sbg")
    assert before.spec.format_version == 1
    old = before.read(np.arange(20))
    run_documented("pagstore migrate stores/sbg", cwd=tmp_path)
    after = open_store(tmp_path / "stores" / "sbg")
    assert after.spec.format_version == 2 and after.spec.grad_codec == "raw"
    assert "created_at" not in after.spec.to_attrs()
    for a, b in zip(old, after.read(np.arange(20))):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # the same gradients, bit for bit
    assert np.array_equal(after.read_classes(np.arange(20)), np.tile(np.arange(3), (20, 1)))
    report = verify_store(tmp_path / "stores" / "sbg")
    assert report.ok and report.export_checked, report.to_dict()  # the export was redone for v2
    assert sorted(p.name for p in tmp_path.joinpath("stores").iterdir()) == ["sbg"]  # no temp dirs left
    again = run_documented("pagstore migrate stores/sbg", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already format_version 2" in again.stderr


def test_migrate_to_int8_keeps_directions(tmp_path: Path) -> None:
    from pagstore.migrate import migrate_store

    shutil.copytree(V1_FIXTURE, tmp_path / "s")
    old = open_store(tmp_path / "s").read(np.arange(20))[2].astype(np.float32)
    migrate_store(tmp_path / "s", grad_codec="int8")
    store = open_store(tmp_path / "s")
    assert store.arrays["grads"].dtype == np.int8
    new = store.read(np.arange(20))[2].astype(np.float32)
    a, b = old.reshape(60, -1), new.reshape(60, -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.999
    assert verify_store(tmp_path / "s").ok


def test_zarr_dataset_shard_cache_gives_the_same_batches_and_stays_bounded(tmp_path: Path, monkeypatch) -> None:
    from pagstore.loaders import ZarrGradientDataset

    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2-int8"]))
    filled_store(tmp_path / "s", num_samples=40, samples_per_shard=8)
    order = np.random.default_rng(0).permutation(40).tolist() + [3, 3, 39]
    cached = ZarrGradientDataset(tmp_path / "s", with_classes=True, cache_bytes=3000)
    plain = ZarrGradientDataset(tmp_path / "s", with_classes=True, cache_bytes=0)
    for start in range(0, len(order), 7):
        rows = order[start:start + 7]
        for a, b in zip(cached.read_batch(rows), plain.read_batch(rows)):
            assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())
        assert sum(x.nbytes for v in cached._cache.values() for x in v.values()) <= 3000
    assert 0 < len(cached._cache) < 5  # bounded: not every shard is kept
    exp = expected(40, 8, (1, 4, 4))
    np.testing.assert_array_equal(cached.read_batch([17])[3].numpy(), exp["classes"][[17]])
