"""`dvc repro distill_nac` (with train_noisy_classifier upstream) in a throw-away DVC project."""

from __future__ import annotations

import json

import yaml

from pagstore.store import open_store
from pagstore.verify import verify_store
from tests.helpers.dvc_project import dvc, dvc_project
from tests.training.train_fixtures import tiny_split

OVERRIDES = {"distill": {"common": {"samples_per_shard": 16, "batch_size": 8, "workers": 1},
                         "plots": {"num_images": 2}},
             "noisy_classifier": {"model_kwargs": {"width": 4}, "epochs": 2, "batch_size": 16}}


def test_dvc_repro_train_noisy_classifier_and_distill_nac(tmp_path):
    root = dvc_project(tmp_path, OVERRIDES)
    tiny_split(32, size=8, seed=0).save(root / "data/prepared/train.npz")
    tiny_split(16, size=8, seed=1, split="test").save(root / "data/prepared/test.npz")
    dvc(root, "repro", "-s", "train_noisy_classifier")
    dvc(root, "repro", "-s", "distill_nac")
    metrics = json.loads((root / "metrics/noisy_classifier.details.json").read_text())  # the full record
    assert metrics["t"] == 400 and metrics["cpu_seconds"] > 0 and 0 <= metrics["noisy_test_accuracy"] <= 1
    lean = json.loads((root / "metrics/noisy_classifier.json").read_text())  # what DVC shows
    assert lean == {"test_acc": round(100 * metrics["noisy_test_accuracy"], 1),
                    "train_s": round(metrics["train_seconds"], 1)}
    store = open_store(root / "stores/nac")
    assert store.is_complete() and store.spec.source["name"] == "nac" and verify_store(root / "stores/nac").ok
    assert (root / "plots/distill/nac.png").stat().st_size > 0
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert {"train_noisy_classifier", "distill_nac"} <= set(lock["stages"])
