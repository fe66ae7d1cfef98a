"""Writer checks: every bad write is refused before anything is written, naming the global sample index."""

from __future__ import annotations

import numpy as np
import pytest
from store_fixtures import new_store, shard_data

from pagstore.store import StoreError, auto_layout


def _shard1(tmp_path, **kw):
    store = new_store(tmp_path / "s", num_samples=16, samples_per_shard=8, **kw)
    return store, shard_data(1, 8, 16, store.sample_shape, store.spec.image_dtype)


def _write(store, d):
    store.write_shard(1, d["images"], d["labels"], d["grads"], d["index"])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(labels=np.where(np.arange(8) == 3, 7, d["labels"])),
     r"label 7 of sample 11 is outside \[0, 3\)"),
    (lambda d: d.update(labels=np.where(np.arange(8) == 0, -1, d["labels"])), "label -1 of sample 8"),
    (lambda d: d["grads"].__setitem__((6, 0, 0, 0, 0), np.inf), "grads of sample 14 contain NaN or inf"),
    (lambda d: d["grads"].__setitem__((2, 1, 0, 0, 0), 1e6), r"sample 10 .*float16.*overflow|overflow.*sample 10"),
    (lambda d: d.update(index=np.where(np.arange(8) == 5, -4, d["index"])), "index -4 of sample 13 is negative"),
    (lambda d: d.update(grads=d["grads"][:7]), r"grads must have shape \(8, 3, 1, 4, 4\), got \(7, 3, 1, 4, 4\)"),
    (lambda d: d.update(images=d["images"].astype(np.float32)), "images must be uint8"),
    (lambda d: d.update(labels=d["labels"].astype(np.float64)), "labels must be integers"),
    (lambda d: d.update(grads=d["grads"].astype(np.int32)), "grads must be floating point"),
])
def test_bad_writes_are_rejected_with_the_sample(tmp_path, mutate, message) -> None:
    store, d = _shard1(tmp_path)
    mutate(d)
    with pytest.raises(StoreError, match=message) as info:
        _write(store, d)
    assert "shard 1 (samples 8..15)" in str(info.value)
    assert store.missing_shards() == [0, 1]
    assert not store.arrays["labels"][8:16].any()  # nothing of the shard was written


def test_raw_float_images_must_be_finite(tmp_path) -> None:
    store = new_store(tmp_path / "s", num_samples=16, samples_per_shard=8, sample_shape=(2,), image_dtype="float32")
    d = shard_data(1, 8, 16, (2,), "float32")
    d["images"][4, 1] = np.nan
    with pytest.raises(StoreError, match="images of sample 12 contain NaN"):
        _write(store, d)


def test_read_keeps_requested_order_and_duplicates(tmp_path) -> None:
    store, d = _shard1(tmp_path)
    _write(store, d)
    images, labels, grads = store.read([15, 8, 15, 9])
    np.testing.assert_array_equal(labels, d["labels"][[7, 0, 7, 1]])
    np.testing.assert_array_equal(grads, d["grads"][[7, 0, 7, 1]].astype(np.float16))
    np.testing.assert_array_equal(store.read_index([9, 8]), d["index"][[1, 0]])
    with pytest.raises(IndexError, match="sample index 16 out of range"):
        store.read([16])


def test_auto_layout_sizes_chunks_and_shards() -> None:
    per = 10 * 3 * 32 * 32 * 2  # CIFAR-shaped float16 gradients: 61440 bytes per sample
    chunk, shard = auto_layout(per, 50000, None)
    assert shard % chunk == 0
    assert 0.5 * 2**20 <= chunk * per <= 2**20 and 16 * 2**20 <= shard * per <= 32 * 2**20
    assert auto_layout(per, 20, None) == (17, 34)  # tiny stores: one shard covering everything
    assert auto_layout(per, 50000, 100) == (10, 100)  # a given shard size gets a chunk that divides it


def test_store_sizes_shards_automatically(tmp_path) -> None:
    from pagstore.store import create_store
    from store_fixtures import dataset_info

    store = create_store(tmp_path / "s", num_samples=5000, num_classes=3, sample_shape=(3, 32, 32),
                         dataset=dataset_info(), source={"name": "x"})
    grads = store.arrays["grads"]
    assert grads.shards[0] == store.spec.samples_per_shard and grads.shards[0] % grads.chunks[0] == 0
    assert store.arrays["images"].shards[0] == store.spec.samples_per_shard


def test_mantissa_rounding_is_recorded_and_keeps_direction(tmp_path) -> None:
    from pagstore.store import round_mantissa

    store, d = _shard1(tmp_path, grad_mantissa_bits=7)
    _write(store, d)
    assert store.spec.to_attrs()["grad_mantissa_bits"] == 7
    stored = store.read(slice(8, 16))[2]
    full = d["grads"].astype(np.float16)
    np.testing.assert_array_equal(stored, round_mantissa(full, 7))
    assert not np.array_equal(stored, full)
    assert (stored.view(np.uint16) & 0b111).max() == 0  # 3 low mantissa bits dropped
    a, b = stored.astype(np.float64).reshape(8, -1), d["grads"].astype(np.float64).reshape(8, -1)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9999
    with pytest.raises(StoreError, match="grad_mantissa_bits: existing 7 != requested None"):
        new_store(tmp_path / "s", num_samples=16, samples_per_shard=8, mode="a")
    with pytest.raises(StoreError, match=r"grad_mantissa_bits must be None or in \[1, 10\]"):
        new_store(tmp_path / "t", num_samples=16, samples_per_shard=8, grad_mantissa_bits=11)


def test_source_parameters_are_normalised_to_json(tmp_path) -> None:
    from pagstore.store import create_store
    from store_fixtures import dataset_info

    kw = dict(num_samples=4, num_classes=3, sample_shape=(2,), image_dtype="float32", dataset=dataset_info())
    store = create_store(tmp_path / "s", source={"name": "sbg", "t": (100, 200)}, **kw)
    assert store.spec.source == {"name": "sbg", "t": [100, 200]}
    assert create_store(tmp_path / "s", "a", source={"name": "sbg", "t": (100, 200)}, **kw).spec == store.spec
    with pytest.raises(StoreError, match="JSON-serialisable"):
        create_store(tmp_path / "t", source={"name": "x", "f": object()}, **kw)
