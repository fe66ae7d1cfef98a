"""The readers' own integrity checks (bugs B1-B7 of docs/reliability.md) on the edges the fault-injection
suite does not cover: legitimate data that must NOT be refused, and the per-handle existence cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from store_fixtures import new_store, write_shards

from pagstore.loaders import stream_batches
from pagstore.shards import ExportError, export_webdataset
from pagstore.store import StoreDataError, nonfinite_rows, open_store, shard_file_key
from pagstore.store_checks import _BLOCK, any_nonfinite
from pagstore.verify import verify_store


def test_all_fill_value_shard_is_stored_and_reads_clean(tmp_path: Path) -> None:
    """A shard whose labels, images and grads are all 0 (zarr's fill value) must still get its files:
    otherwise the missing-file check (B2) could not tell it from a deleted shard."""
    store = new_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    write_shards(store, [1])
    n, shape = 8, store.sample_shape
    store.write_shard(0, np.zeros((n, *shape), np.uint8), np.zeros(n, np.int64), np.zeros((n, 3, *shape)),
                      np.zeros(n, np.int64))
    for name, arr in store.arrays.items():
        if name != "done":
            assert (tmp_path / "s" / shard_file_key(name, arr.ndim, 0)).is_file(), f"no shard file for {name}"
    images, labels, grads = open_store(tmp_path / "s").read(np.arange(16))
    assert not images[:8].any() and not labels[:8].any() and not grads[:8].any()
    assert verify_store(tmp_path / "s").ok


def test_unwritten_shard_still_reads_as_fill_but_lost_done_shard_is_named(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    write_shards(store, [0])
    assert not open_store(tmp_path / "s").read(np.arange(8, 16))[2].any()  # shard 1 not done: no error
    reader = open_store(tmp_path / "s")
    reader.read([0, 1])  # the handle has now seen shard 0's files
    (tmp_path / "s" / "labels" / "c" / "0").unlink()
    with pytest.raises(StoreDataError, match=r"labels/c/0: shard 0 of 'labels' \(samples 0..7\)"):
        open_store(tmp_path / "s").read([3])  # a fresh handle checks again


def test_stream_refuses_tar_with_extra_sample_count_mismatch(tmp_path: Path) -> None:
    """index.json count disagreeing with the tar (sha256 consistent) -> ExportError naming the tar."""
    import json

    store = new_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    write_shards(store)
    export_webdataset(tmp_path / "s", samples_per_tar=8)
    index_path = tmp_path / "s" / "shards" / "index.json"
    index = json.loads(index_path.read_text())
    index["shards"][0]["count"], index["shards"][1]["count"] = 7, 9
    index_path.write_text(json.dumps(index))
    with pytest.raises(ExportError, match=r"grads-00000[01]\.tar: holds 8 samples, index.json says"):
        list(stream_batches(tmp_path / "s", 4, shuffle=False, seed=0, epoch=0))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("where", [0, _BLOCK - 1, _BLOCK, 2 * _BLOCK + 7, -1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_any_nonfinite_finds_one_bad_value_anywhere(dtype: str, where: int, bad: float) -> None:
    """One NaN/inf in any block (first, block edges, last) of a multi-block array is found; the largest
    finite values of either sign and negative zero are not flagged."""
    x = np.random.default_rng(1).normal(size=2 * _BLOCK + 10).astype(dtype)
    x[:4] = np.finfo(dtype).max, -np.finfo(dtype).max, -0.0, np.finfo(dtype).tiny
    assert not any_nonfinite(x) and not any_nonfinite(x.reshape(2, -1)[:, ::2])  # strided view too
    x[where] = bad
    assert any_nonfinite(x) and any_nonfinite(x.reshape(1, -1))


def test_any_nonfinite_of_empty_and_integer_arrays() -> None:
    assert not any_nonfinite(np.empty((0, 3), np.float16))
    assert not any_nonfinite(np.arange(5))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nonfinite_rows_matches_isfinite(dtype: str) -> None:
    x = np.random.default_rng(0).normal(size=(6, 3, 5)).astype(dtype)
    x[1, 2, 4], x[3, 0, 0], x[4, 1, 1] = np.nan, -np.inf, np.finfo(dtype).max  # max is finite
    assert nonfinite_rows(x).tolist() == (~np.isfinite(x.reshape(6, -1)).all(1)).tolist() == \
        [False, True, False, True, False, False]
