"""The per-store chunk compression of the gradient arrays (``grad_compression``: zstd, lz4hc, none).

The contract suite runs every reader on lz4hc and uncompressed stores (store_fixtures.VARIANTS) and
test_shard_decode compares the fast decoder with zarr's read for each; this file checks the option itself:
the default's bytes, validation, resume, plain zarr, verify and the distill config.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import store_fixtures
import zarr
from store_fixtures import dataset_info, expected, filled_store, new_store

from pagstore.chunk_compression import compression_of
from pagstore.shard_decode import fast_layout
from pagstore.store import StoreError, create_store, open_store, shard_file_key
from pagstore.verify import verify_store

# The codec list of every store's grads before the option existed: the default must keep it byte for byte.
ZSTD_FLOAT16 = [{"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "blosc", "configuration": {"typesize": 2, "cname": "zstd", "clevel": 5, "shuffle": "shuffle",
                                                    "blocksize": 0}},
                {"name": "crc32c"}]


def _use(monkeypatch, variant: str) -> None:
    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS[variant]))


def _inner_codecs(path: Path, name: str) -> list[dict]:
    return json.loads((path / name / "zarr.json").read_text())["codecs"][0]["configuration"]["codecs"]


def _create(path: Path, **kw):
    return create_store(path, num_samples=8, num_classes=3, sample_shape=(1, 4, 4), dataset=dataset_info(),
                        source={"name": "fake"}, samples_per_shard=8, **kw)


def test_default_is_todays_zstd_and_adds_no_attribute(tmp_path: Path) -> None:
    store = _create(tmp_path / "s")
    assert store.grad_compression == "zstd"
    assert _inner_codecs(tmp_path / "s", "grads") == ZSTD_FLOAT16
    attrs = json.loads((tmp_path / "s" / "zarr.json").read_text())["attributes"]
    assert not any("compression" in key for key in attrs)  # the group metadata (a hashed file) is unchanged


@pytest.mark.parametrize("bad", ["lz4", "ZSTD", None, ""])
def test_a_bad_value_is_one_line_naming_the_key_and_the_choices(tmp_path: Path, bad) -> None:
    with pytest.raises(StoreError) as err:
        _create(tmp_path / "s", grad_compression=bad)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.endswith(f"grad_compression must be one of ['zstd', 'lz4hc', 'none'], got {bad!r}")
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_format_v1_stays_zstd(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="format_version 1 stores use grad_compression 'zstd'"):
        _create(tmp_path / "s", grad_compression="none", format_version=1)


def test_resume_refuses_another_compression(tmp_path: Path, monkeypatch) -> None:
    _use(monkeypatch, "v2-none")
    filled_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    assert new_store(tmp_path / "s", num_samples=16, samples_per_shard=8, mode="a").is_complete()
    _use(monkeypatch, "v2")
    with pytest.raises(StoreError, match=r"grad_compression: existing 'none' != requested 'zstd' \(use mode 'w'"):
        new_store(tmp_path / "s", num_samples=16, samples_per_shard=8, mode="a")


@pytest.mark.parametrize("variant", ["v2-none", "v2-K2-int8-none", "v2-lz4hc"])
def test_plain_zarr_reads_it(tmp_path: Path, monkeypatch, variant: str) -> None:
    _use(monkeypatch, variant)
    filled_store(tmp_path / "s", num_samples=20, samples_per_shard=8)
    exp = expected(20, 8, (1, 4, 4))
    g = zarr.open_group(str(tmp_path / "s"), mode="r")
    grads = g["grads"][:].astype("float32")
    if g.attrs["grad_codec"] == "int8":  # the documented recipe; expected() holds the decoded float32 values
        grads *= g["grad_scales"][:][:, :, None, None, None]
        np.testing.assert_array_equal(grads, exp["grads"])
    else:
        np.testing.assert_array_equal(grads, exp["grads"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(g["images"][:], exp["images"])


def test_uncompressed_chunks_are_the_raw_bytes_then_their_crc(tmp_path: Path, monkeypatch) -> None:
    """What "none" means on disk (so any reader of zarr's bytes + crc32c codecs, not only zarr, can read it)."""
    import google_crc32c

    _use(monkeypatch, "v2-none")
    filled_store(tmp_path / "s", num_samples=8, samples_per_shard=8)
    assert _inner_codecs(tmp_path / "s", "grads") == [ZSTD_FLOAT16[0], ZSTD_FLOAT16[2]]
    raw = (tmp_path / "s" / shard_file_key("grads", 5, 0)).read_bytes()
    want = expected(8, 8, (1, 4, 4))["grads"].astype("<f2").tobytes()
    assert raw[:len(want)] == want  # one inner chunk, at the start of the shard file
    assert raw[len(want):len(want) + 4] == np.uint32(google_crc32c.value(want)).tobytes()


def test_verify_passes_and_finds_a_flipped_byte_in_an_uncompressed_chunk(tmp_path: Path, monkeypatch) -> None:
    _use(monkeypatch, "v2-none")
    filled_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    assert verify_store(tmp_path / "s", check_export=False).ok
    f = tmp_path / "s" / shard_file_key("grads", 5, 1)
    data = bytearray(f.read_bytes())
    data[10] ^= 0x01  # one bit of one float16 value: still finite, only the crc32c can tell
    f.write_bytes(bytes(data))
    report = verify_store(tmp_path / "s", check_export=False)
    assert not report.ok and [(p.kind, p.shard, p.array) for p in report.problems] == [("decode", 1, "grads")]
    assert "grads/c/1/0/0/0/0: cannot decode shard 1" in report.problems[0].message


def test_foreign_codecs_read_through_zarr(tmp_path: Path) -> None:
    """A codec list pagstore does not write (here gzip) has no compression name and no fast layout."""
    g = zarr.open_group(str(tmp_path / "g"), mode="w")
    arr = g.create_array("a", shape=(8, 4), dtype="float32", chunks=(4, 4), shards=(8, 4),
                         compressors=[zarr.codecs.GzipCodec(), zarr.codecs.Crc32cCodec()], fill_value=0)
    arr[:] = np.arange(32, dtype=np.float32).reshape(8, 4)
    assert compression_of(arr) is None and fast_layout(arr) is None
    plain = g.create_array("b", shape=(8, 4), dtype="float32", chunks=(4, 4), shards=(8, 4),
                           compressors=[zarr.codecs.Crc32cCodec()], fill_value=0)
    assert compression_of(plain) == "none" and fast_layout(plain).compressed is False


def test_distill_common_takes_it_and_refuses_a_bad_value_in_one_line() -> None:
    from pagstore.config import ConfigError, from_dict
    from pagstore.distill.config import DistillCommon

    base = {"samples_per_shard": 8, "grad_dtype": "float16", "scheduler": "", "batch_size": 4, "workers": 1,
            "seed": 0}
    assert from_dict(DistillCommon, base).grad_compression == "zstd"
    assert from_dict(DistillCommon, {**base, "grad_compression": "none"}).grad_compression == "none"
    with pytest.raises(ConfigError) as err:
        from_dict(DistillCommon, {**base, "grad_compression": "gzip"}, where="distill.common")
    assert str(err.value) == "distill.common.grad_compression: expected one of ['zstd', 'lz4hc', 'none'], got 'gzip'"
