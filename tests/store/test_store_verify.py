"""verify_store: corrupt, incomplete or inconsistent stores are reported with the shard file and samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from store_fixtures import filled_store, new_store, write_shards

from pagstore.shards import export_webdataset
from pagstore.verify import verify_store


def _store(tmp_path: Path) -> Path:
    path = tmp_path / "s"
    filled_store(path, num_samples=24, samples_per_shard=8)
    return path


def _kinds(report) -> list[str]:
    return [p.kind for p in report.problems]


def test_intact_store_and_export_pass(tmp_path) -> None:
    path = _store(tmp_path)
    export_webdataset(path, samples_per_tar=10)
    report = verify_store(path)
    assert report.ok and report.shards_checked == 3 and report.export_checked, report.to_dict()


@pytest.mark.parametrize("where", ["middle", "index"])
def test_corrupt_shard_file_names_file_and_samples(tmp_path, where) -> None:
    path = _store(tmp_path)
    shard_file = path / "grads" / "c" / "1" / "0" / "0" / "0" / "0"
    raw = bytearray(shard_file.read_bytes())
    at = len(raw) // 2 if where == "middle" else len(raw) - 10  # blosc payload, or the shard's chunk index
    raw[at:at + 8] = b"\xff" * 8
    shard_file.write_bytes(bytes(raw))
    report = verify_store(path)
    assert not report.ok
    [p] = report.problems
    assert p.kind == "decode" and p.shard == 1 and p.samples == [8, 15] and p.array == "grads"
    assert p.file.endswith("grads/c/1/0/0/0/0") and "samples 8..15" in p.message


def test_truncated_shard_file_is_reported(tmp_path) -> None:
    path = _store(tmp_path)
    shard_file = path / "images" / "c" / "2" / "0" / "0" / "0"
    shard_file.write_bytes(shard_file.read_bytes()[:20])
    [p] = verify_store(path).problems
    assert p.kind == "decode" and p.samples == [16, 23] and p.array == "images"


def test_nonfinite_and_label_out_of_range_written_behind_our_back(tmp_path) -> None:
    path = _store(tmp_path)
    group = zarr.open_group(str(path), mode="r+")
    grads = group["grads"][8:16]
    grads[3, 0, 0, 0, 0] = np.nan
    group["grads"][8:16] = grads
    labels = group["labels"][16:24]
    labels[6] = 9
    group["labels"][16:24] = labels
    report = verify_store(path)
    assert sorted(_kinds(report)) == ["label", "nonfinite"]
    by_kind = {p.kind: p for p in report.problems}
    assert by_kind["nonfinite"].sample == 11 and by_kind["nonfinite"].shard == 1
    assert by_kind["label"].sample == 22 and "label 9" in by_kind["label"].message


def test_incomplete_store_lists_missing_shards(tmp_path) -> None:
    store = new_store(tmp_path / "s", num_samples=24, samples_per_shard=8)
    write_shards(store, [1])
    report = verify_store(tmp_path / "s")
    assert _kinds(report) == ["incomplete"] and "[0, 2]" in report.problems[0].message


def test_export_checksum_mismatch_and_missing_tar(tmp_path) -> None:
    path = _store(tmp_path)
    export_webdataset(path, samples_per_tar=10)
    tar = path / "shards" / "grads-000001.tar"
    data = bytearray(tar.read_bytes())
    data[700] ^= 0xFF
    tar.write_bytes(bytes(data))
    (path / "shards" / "grads-000002.tar").unlink()
    report = verify_store(path)
    msgs = [p.message for p in report.problems]
    assert _kinds(report) == ["export", "export"]
    assert "grads-000001.tar: sha256" in msgs[0] and "samples 10..19" in msgs[0]
    assert "grads-000002.tar: tar missing" in msgs[1]


def test_bad_spec_and_garbage_metadata_are_reported_not_raised(tmp_path) -> None:
    path = _store(tmp_path)
    zarr.open_group(str(path), mode="r+").attrs["format_version"] = 7
    assert _kinds(verify_store(path)) == ["spec"]
    (path / "zarr.json").write_text("{not json")
    report = verify_store(path)
    assert _kinds(report) == ["open"] and str(path) in report.problems[0].message
    assert _kinds(verify_store(tmp_path / "absent")) == ["open"]


def test_array_with_wrong_dtype_is_reported(tmp_path) -> None:
    path = _store(tmp_path)
    group = zarr.open_group(str(path), mode="r+")
    del group["labels"]
    group.create_array("labels", shape=(24,), dtype="int32", chunks=(8,))
    [p] = verify_store(path).problems
    assert p.kind == "open" and "array 'labels' is int32 (24,), the spec says int64 (24,)" in p.message
    del group["index"]
    [p] = verify_store(path).problems
    assert p.kind == "open" and "'index' missing" in p.message


def test_a_plain_zarr_array_is_not_a_store(tmp_path) -> None:
    zarr.create_array(str(tmp_path / "a"), shape=(3,), dtype="int32")
    [p] = verify_store(tmp_path / "a").problems
    assert p.kind == "open" and "no gradient store" in p.message


def test_stale_export_of_a_recreated_store_is_reported(tmp_path) -> None:
    path = _store(tmp_path)
    export_webdataset(path, samples_per_tar=10)
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["source"] = {"name": "fake", "scale": 3.0}  # as if re-made with other parameters
    report = verify_store(path)
    assert _kinds(report) == ["export"] and "spec differs in source" in report.problems[0].message
