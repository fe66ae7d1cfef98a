"""The prepare stage: the function on its own, and `dvc repro prepare` in a throw-away DVC project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from pagstore.config import ConfigError
from pagstore.data import load_split
from stages.prepare import main, prepare
from tests.helpers.dvc_project import REPO, dvc, dvc_project

BUDGET = {"eps_l2": 15.0, "eps_linf": 0.0, "large_eps_l2": 30.0, "large_eps_linf": 0.0}


def test_prepare_writes_splits_and_meta(tmp_path: Path) -> None:
    params = tmp_path / "pipeline.yaml"
    opts = {"seed": 1, "points_per_mode": 5, "test_size": 12}
    ds = {"reader": "toy2d", "options": opts, "eval": BUDGET}
    params.write_text(yaml.safe_dump({"profile": "toy", "datasets": {"toy": ds}}))
    out = tmp_path / "data" / "prepared"
    main(["--params", str(params), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "test.npz", "train.npz"]
    meta = json.loads((out / "meta.json").read_text())
    train, test = load_split(out / "train.npz"), load_split(out / "test.npz")
    assert meta["profile"] == "toy" and meta["reader"] == "toy2d" and meta["options"] == opts
    assert meta["sizes"] == {"train": 30, "test": 12} == {"train": len(train), "test": len(test)}
    assert meta["fingerprints"] == {"train": train.fingerprint(), "test": test.fingerprint()}
    assert meta["class_names"] == ["0", "1"] and meta["pixel_space"] == "raw" and meta["sample_shape"] == [2]
    # Re-running replaces the directory whole: stale files do not survive.
    (out / "stale.txt").write_text("x")
    prepare(params, out)
    assert not (out / "stale.txt").exists()
    np.testing.assert_array_equal(load_split(out / "train.npz").images, train.images)


def test_prepare_bad_option_leaves_no_output(tmp_path: Path) -> None:
    params = tmp_path / "pipeline.yaml"
    ds = {"reader": "toy2d", "options": {"points": 5}, "eval": BUDGET}
    params.write_text(yaml.safe_dump({"profile": "toy", "datasets": {"toy": ds}}))
    with pytest.raises(ConfigError, match=r"datasets.toy.options: unknown key\(s\) 'points'"):
        prepare(params, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_cli_reports_missing_archive_without_traceback(tmp_path: Path) -> None:
    params = tmp_path / "pipeline.yaml"
    ds = {"reader": "cifar10", "options": {"raw_dir": "raw"}, "eval": BUDGET}
    params.write_text(yaml.safe_dump({"profile": "c10", "datasets": {"c10": ds}}))
    with pytest.raises(SystemExit) as exit_:
        main(["--params", str(params), "--out", str(tmp_path / "out")])
    msg = str(exit_.value.code)
    assert msg.startswith("prepare: ") and str(tmp_path / "raw" / "cifar-10-python.tar.gz") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
    assert not (tmp_path / "out").exists()


def test_dvc_repro_prepare_then_nothing_changed(tmp_path: Path) -> None:
    root = dvc_project(tmp_path, {"profile": "digits", "datasets": {"digits": {"options": {"image_size": 8}}}})
    first = dvc(root, "repro", "prepare")
    assert "Running stage 'prepare'" in first.stdout
    out = root / "data" / "prepared"
    train = load_split(out / "train.npz")
    assert train.sample_shape == (1, 8, 8)
    assert json.loads((out / "meta.json").read_text())["fingerprints"]["train"] == train.fingerprint()
    second = dvc(root, "repro", "prepare")
    assert "didn't change" in second.stdout and "Running stage" not in second.stdout
    status = dvc(root, "status", "prepare")
    assert "up to date" in status.stdout
