"""`dvc repro` of a plain (vanilla) and a store-backed (pag-cm) training stage in a throw-away DVC project,
on digits shrunk to 8x8 and one epoch of a tiny CNN."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from pagstore.training.checkpoint import load_classifier
from stages.train import main
from tests.helpers.dvc_project import REPO, dvc, dvc_project

OVERRIDES = {
    "datasets": {"digits": {"options": {"image_size": 8, "test_fraction": 0.8}}},
    "distill": {"common": {"samples_per_shard": 512, "batch_size": 256, "workers": 1},
                "plots": {"num_images": 2}},
    "train": {"common": {"model_kwargs": {"width": 4}, "epochs": 1, "milestones": [1], "batch_size": 128,
                         "crop_pad": 1, "eval_samples": 100, "align_samples": 8}},
}


def _outputs(root: Path, method: str) -> tuple[dict, list[dict]]:
    model, meta = load_classifier(root / f"models/classifiers/{method}/checkpoint.pt")
    assert meta["method"] == method and meta["epoch"] == 1
    metrics = json.loads((root / f"metrics/train/{method}.details.json").read_text())
    lean = json.loads((root / f"metrics/train/{method}.json").read_text())  # only what a reader compares
    expected = {"test_acc": round(100 * metrics["test_acc"], 1), "train_s": round(metrics["train_seconds"], 1)}
    if "align_cos" in metrics:  # store-backed methods
        expected["align"] = round(metrics["align_cos"], 3)
    assert lean == expected
    rows = list(csv.DictReader(open(root / f"plots/train/{method}.csv")))
    return metrics, rows


def test_dvc_repro_vanilla_and_pag(tmp_path: Path) -> None:
    if not (REPO / "stages" / "distill.py").is_file():
        pytest.skip("stages/distill.py (the distill helper's stage) is not in the repo yet")
    root = dvc_project(tmp_path, OVERRIDES)
    dvc(root, "repro", "train_plain@vanilla")
    metrics, rows = _outputs(root, "vanilla")
    assert metrics["objective"] == "ce" and 0.0 <= metrics["test_acc"] <= 1.0
    assert len(rows) == 1 and rows[0]["pag"] == "" and rows[0]["align_cos"] == ""

    dvc(root, "repro", "train@pag-cm")
    metrics, rows = _outputs(root, "pag-cm")
    assert metrics["store"] == "cm" and metrics["lam"] == 0.2
    assert float(rows[0]["pag"]) > 0 and -1 <= float(rows[0]["align_cos"]) <= 1
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert {"train_plain@vanilla", "train@pag-cm", "distill@cm", "prepare"} <= set(lock)
    assert "stores/cm" in {d["path"] for d in lock["train@pag-cm"]["deps"]}


def test_unknown_method_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown train method 'pag-xyz'"):
        main(["--params", str(REPO / "pipeline.yaml"), "--method", "pag-xyz", "--prepared", str(tmp_path),
              "--stores", str(tmp_path), "--out", str(tmp_path / "m"), "--metrics", str(tmp_path / "m.json"),
              "--plots", str(tmp_path / "p.csv")])
