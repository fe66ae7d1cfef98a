"""The `pagstore` CLI, driven through typer's CliRunner on small real stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "store"))
from store_fixtures import filled_store, new_store, write_shards  # noqa: E402

from pagstore.cli import app  # noqa: E402

runner = CliRunner()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s"
    filled_store(path, num_samples=24, samples_per_shard=8, sample_shape=(3, 6, 6))
    return path


def test_inspect_table_and_json(store_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(store_path)])
    assert result.exit_code == 0, result.output
    for text in ("format_version", "3/3 shards", '"scale": 2.0', "gradient L2 norms", "zero", "float16"):
        assert text in result.output
    info = json.loads(runner.invoke(app, ["inspect", str(store_path), "--json"]).output)
    assert info["spec"]["source"] == {"name": "fake", "scale": 2.0}
    assert info["arrays"]["grads"]["shape"] == [24, 3, 3, 6, 6] and info["missing_shards"] == []
    assert 0 < info["compression_ratio"] < 2 and info["stored_bytes"] > 0
    g = np.asarray(__import__("zarr").open_group(str(store_path))["grads"][:], dtype=np.float32)
    norms = np.sqrt((g.reshape(24, 3, -1) ** 2).sum(-1))
    assert [r["name"] for r in info["grad_norms"]] == ["zero", "one", "two"]
    np.testing.assert_allclose([r["mean"] for r in info["grad_norms"]], norms.mean(0), rtol=1e-5)
    np.testing.assert_allclose([r["max"] for r in info["grad_norms"]], norms.max(0), rtol=1e-5)


def test_inspect_incomplete_and_missing(tmp_path: Path) -> None:
    store = new_store(tmp_path / "s", num_samples=24, samples_per_shard=8)
    write_shards(store, [0])
    info = json.loads(runner.invoke(app, ["inspect", str(tmp_path / "s"), "--json"]).output)
    assert info["shards_done"] == 1 and info["missing_shards"] == [1, 2]
    result = runner.invoke(app, ["inspect", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "no gradient store" in result.output


def test_verify_ok_and_failing_shard_named(store_path: Path) -> None:
    result = runner.invoke(app, ["verify", str(store_path)])
    assert result.exit_code == 0 and "OK" in result.output
    shard_file = store_path / "grads" / "c" / "2" / "0" / "0" / "0" / "0"
    shard_file.write_bytes(shard_file.read_bytes()[:-30] + b"\0" * 30)
    result = runner.invoke(app, ["verify", str(store_path)])
    assert result.exit_code == 1
    assert "shard 2" in result.output and "samples 16..23" in result.output and "grads/c/2/0/0/0/0" in result.output
    report = json.loads(runner.invoke(app, ["verify", str(store_path), "--json"]).output)
    assert report["ok"] is False and report["problems"][0]["samples"] == [16, 23]


def test_export_then_verify_checks_tars(store_path: Path) -> None:
    result = runner.invoke(app, ["export", str(store_path), "--samples-per-tar", "10"])
    assert result.exit_code == 0, result.output
    assert "3 tar(s)" in result.output and (store_path / "shards" / "grads-000002.tar").is_file()
    assert "export checksums match" in runner.invoke(app, ["verify", str(store_path)]).output


def test_export_refuses_incomplete_store(tmp_path: Path) -> None:
    new_store(tmp_path / "s", num_samples=16, samples_per_shard=8)
    result = runner.invoke(app, ["export", str(tmp_path / "s")])
    assert result.exit_code == 2 and "missing shards [0, 1]" in result.output


def test_show_writes_a_grid_png(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = runner.invoke(app, ["show", str(store_path), "-o", str(out), "-i", "3", "-i", "17"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        w, h = im.size
    assert im.format == "PNG" and w > h  # 2 rows x (1 image + 3 gradients)
    result = runner.invoke(app, ["show", str(store_path), "-o", str(out), "-i", "99"])
    assert result.exit_code == 2 and "--index 99" in result.output


def test_show_refuses_vector_stores(tmp_path: Path) -> None:
    filled_store(tmp_path / "v", num_samples=8, samples_per_shard=8, sample_shape=(2,), image_dtype="float32")
    result = runner.invoke(app, ["show", str(tmp_path / "v"), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "(ch, H, W)" in result.output and not (tmp_path / "x.png").exists()


def test_inspect_and_show_a_k_of_c_int8_store(tmp_path: Path, monkeypatch) -> None:
    import store_fixtures

    monkeypatch.setattr(store_fixtures, "VARIANT", dict(store_fixtures.VARIANTS["v2-K2-int8-none"]))
    path = tmp_path / "k2"
    filled_store(path, num_samples=16, samples_per_shard=8, sample_shape=(3, 6, 6))
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["spec"]["grad_codec"] == "int8" and info["spec"]["num_target_classes"] == 2
    assert info["grad_compression"] == "none"
    assert "gradient chunks: none" in runner.invoke(app, ["inspect", str(path)]).output
    assert set(info["arrays"]) >= {"classes", "grad_scales"} and info["arrays"]["grads"]["dtype"] == "int8"
    assert all(row["mean"] > 0 for row in info["grad_norms"])  # every class is held by some sample
    result = runner.invoke(app, ["show", str(path), "-o", str(tmp_path / "k2.png"), "--count", "3"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "k2.png").size[0] > 0
