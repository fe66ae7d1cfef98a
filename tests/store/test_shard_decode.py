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


@pytest.mark.parametrize("variant, shape", [("v1", SHAPE), ("v2-K2-int8", (3, 128, 128)), ("v2-lz4hc", SHAPE),
                                            ("v2-none", SHAPE), ("v2-K2-int8-none", (3, 128, 128))])
def test_fast_reads_equal_zarr_reads_for_any_rows(tmp_path: Path, monkeypatch, variant: str,
                                                  shape: tuple[int, ...]) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[variant]))
    store = new_store(tmp_path / "s", num_samples=45, samples_per_shard=16, sample_shape=shape,
                      grad_dtype="float32")
    write_shards(store, [0, 2])  # shard 1 unwritten: both readers give the fill value 0
    chunk = int(store.arrays["grads"].chunks[0])
    assert chunk < 16 and 45 % chunk and all(v is not None for v in store._fast.values())
    raw = store_fixtures.VARIANT["grad_compression"] == "none"  # the gradient arrays take the uncompressed path
    assert {n: lay.compressed for n, lay in store._fast.items()} == {
        n: not (raw and n in ("grads", "grad_scales")) for n in store._fast}
    slow = _zarr_only(tmp_path / "s", monkeypatch)
    assert all(v is None for v in slow._fast.values())
    rng = np.random.default_rng(0)
    # whole store, one row, a run crossing chunks and shards, the padded last chunk, random rows
    names = tuple(store._fast)  # every per-sample array: images, labels, grads, index (+ classes, grad_scales)
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


@pytest.mark.parametrize("variant", ["v2", "v2-lz4hc", "v2-none"])
def test_a_flipped_byte_fails_the_checksum_and_names_the_file(tmp_path: Path, monkeypatch, variant: str) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[variant]))
    store = new_store(tmp_path / "s", num_samples=32, samples_per_shard=16, sample_shape=SHAPE, grad_dtype="float32")
    write_shards(store)
    f = tmp_path / "s" / shard_file_key("grads", 5, 1)
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF  # inside the first inner chunk of shard 1
    f.write_bytes(bytes(data))
    lay = open_store(tmp_path / "s")._fast["grads"]
    with pytest.raises(ValueError, match=r"grads/c/1/0/0/0/0 \(chunk 0\): crc32c checksum does not match"):
        sd.read_rows([lay], [(16, 20)])
    with pytest.raises(ValueError, match=r"grads/c/1/0/0/0/0 \(chunk 0\): crc32c checksum does not match"):
        sd.read_rows([lay], [(17, 18)])  # one row of the chunk: read through a temporary, checked all the same
    assert sd.read_rows([lay], [(20, 24)])[0].shape == (4, 3, *SHAPE)  # the next chunk is intact
    assert open_store(tmp_path / "s").read([3])[0].shape == (1, *SHAPE)  # shard 0 still reads
    with pytest.raises(StoreDataError, match=r"grads/c/1/0/0/0/0: cannot decode shard 1 of 'grads'"):
        open_store(tmp_path / "s").read([17])


def test_an_uncompressed_chunk_of_the_wrong_length_is_refused(tmp_path: Path, monkeypatch) -> None:
    """A shard index whose entry does not span exactly chunk bytes + crc32c is damage, not a short read."""
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-none"]))
    store = new_store(tmp_path / "s", num_samples=16, samples_per_shard=16, sample_shape=SHAPE, grad_dtype="float32")
    write_shards(store)
    f = tmp_path / "s" / shard_file_key("grads", 5, 0)
    data = bytearray(f.read_bytes())
    n_chunks = 16 // int(store.arrays["grads"].chunks[0])
    index = np.frombuffer(bytes(data[-16 * n_chunks - 4:-4]), dtype="<u8").reshape(n_chunks, 2).copy()
    index[1, 1] -= 8  # chunk 1 claims 8 bytes fewer; re-sign the index so only the length is wrong
    body = index.tobytes()
    import google_crc32c

    data[-16 * n_chunks - 4:] = body + np.uint32(google_crc32c.value(body)).tobytes()
    f.write_bytes(bytes(data))
    lay = open_store(tmp_path / "s")._fast["grads"]
    assert sd.read_rows([lay], [(0, 4)])[0].any()  # chunk 0 is untouched
    with pytest.raises(ValueError, match=r"grads/c/0/0/0/0/0 \(chunk 1\): the shard index says \d+ bytes, an "
                                         r"uncompressed chunk has \d+"):
        sd.read_rows([lay], [(4, 8)])
