"""The direct shard-file decoder (pagstore.shard_decode) reads exactly what zarr reads, or refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import store_fixtures
from store_fixtures import new_store, write_shards

import pagstore.shard_decode as sd
from pagstore.store import StoreDataError, open_store, shard_file_key

SHAPE = (3, 64, 64)  # 3 x 3 x 64 x 64 float32 grads per sample: inner chunks of 4 rows in shards of 16


def _zarr_only(path: Path, monkeypatch):
    monkeypatch.setattr(sd, "ENABLED", False)
    store = open_store(path)
    monkeypatch.setattr(sd, "ENABLED", True)
    return store


@pytest.mark.parametrize("variant, shape", [("v1", SHAPE), ("v2-K2-int8", (3, 128, 128))])
def test_fast_reads_equal_zarr_reads_for_any_rows(tmp_path: Path, monkeypatch, variant: str,
                                                  shape: tuple[int, ...]) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[variant]))
    store = new_store(tmp_path / "s", num_samples=45, samples_per_shard=16, sample_shape=shape,
                      grad_dtype="float32")
    write_shards(store, [0, 2])  # shard 1 unwritten: both readers give the fill value 0
    chunk = int(store.arrays["grads"].chunks[0])
    assert chunk < 16 and 45 % chunk and all(v is not None for v in store._fast.values())
    slow = _zarr_only(tmp_path / "s", monkeypatch)
    assert all(v is None for v in slow._fast.values())
    rng = np.random.default_rng(0)
    # whole store, one row, a run crossing chunks and shards, the padded last chunk, random rows
    names = ("images", "labels", "grads", "index") + (("grad_scales", "classes") if variant != "v1" else ())
    for rows in (np.arange(45), [0], np.arange(3, 38), [44], [41, 42, 43, 44], np.sort(rng.choice(45, 9, False))):
        for name in names:
            fast, ref = (s._read_checked((name,), np.asarray(rows))[0] for s in (store, slow))
            assert fast.dtype == ref.dtype and np.array_equal(fast, ref), (name, rows)
    assert not store.read_stored(np.arange(16, 32))["grads"].any()


def test_no_fast_layout_for_url_stores(tmp_path: Path) -> None:
    url = "memory://pagstore-fast-test/s"
    store = new_store(url, num_samples=8, samples_per_shard=8)
    write_shards(store)
    assert all(v is None for v in open_store(url)._fast.values())
    assert open_store(url).read([1, 2])[2].shape == (2, 3, 1, 4, 4)


def test_a_flipped_byte_fails_the_checksum_and_names_the_file(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", num_samples=32, samples_per_shard=16, sample_shape=SHAPE, grad_dtype="float32")
    write_shards(store)
    f = tmp_path / "s" / shard_file_key("grads", 5, 1)
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF  # inside the first inner chunk of shard 1
    f.write_bytes(bytes(data))
    lay = open_store(tmp_path / "s")._fast["grads"]
    with pytest.raises(ValueError, match=r"grads/c/1/0/0/0/0 \(chunk 0\): crc32c checksum does not match"):
        sd.read_rows([lay], [(16, 20)])
    assert open_store(tmp_path / "s").read([3])[0].shape == (1, *SHAPE)  # shard 0 still reads
    with pytest.raises(StoreDataError, match=r"grads/c/1/0/0/0/0: cannot decode shard 1 of 'grads'"):
        open_store(tmp_path / "s").read([17])
